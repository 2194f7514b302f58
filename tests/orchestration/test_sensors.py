"""Sensors request one run per new file and skip when nothing is new."""

from __future__ import annotations

import os
import time

from dagster import RunRequest, SkipReason, build_sensor_context

from orchestration.defs.ingestion.sensors import partner_files, spool_segments
from revisit.settings import Settings


def _evaluate(sensor, cursor: str | None) -> tuple[list, str | None]:
    context = build_sensor_context(cursor=cursor)
    results = list(sensor(context))
    return results, context.cursor


def test_spool_sensor_requests_a_run_per_newly_closed_segment(settings: Settings) -> None:
    spool = settings.spool_dir / "webhooks"
    spool.mkdir(parents=True)
    (spool / "wh-1.open.jsonl").write_text("{}\n")  # still being written: ignored
    results, cursor = _evaluate(spool_segments, None)
    assert isinstance(results[0], SkipReason)

    (spool / "wh-1.closed.jsonl").write_text("{}\n")
    results, cursor = _evaluate(spool_segments, cursor)
    assert isinstance(results[0], RunRequest)
    again, same_cursor = _evaluate(spool_segments, cursor)
    assert isinstance(again[0], SkipReason) and same_cursor == cursor

    later = spool / "wh-2.closed.jsonl"
    later.write_text("{}\n")
    os.utime(later, (time.time() + 5, time.time() + 5))
    results, _ = _evaluate(spool_segments, cursor)
    assert isinstance(results[0], RunRequest) and results[0].run_key != f"spool-{cursor}"


def test_partner_sensor_sees_new_feed_files(settings: Settings) -> None:
    feed = settings.source_dir / "partners" / "p1"
    feed.mkdir(parents=True)
    results, cursor = _evaluate(partner_files, None)
    assert isinstance(results[0], SkipReason)
    (feed / "events_202611.jsonl").write_text("{}\n")
    results, cursor = _evaluate(partner_files, cursor)
    assert isinstance(results[0], RunRequest)
    assert isinstance(_evaluate(partner_files, cursor)[0][0], SkipReason)


def test_failing_deliveries_are_reported_once(settings: Settings) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text

    from activation.contracts import Channel, PlannedMessage
    from activation.outbox import Outbox
    from orchestration.defs.activation.sensors import failing_deliveries

    settings.data_dir.joinpath("state").mkdir(parents=True)
    outbox = Outbox(settings.state_dsn)
    now = datetime.now(UTC)
    outbox.enqueue(
        [
            PlannedMessage(
                idempotency_key="k1", campaign_id="c", trigger="winback", business_id="b",
                customer_id="u", phone_e164="+79161234567", channel=Channel.telegram,
                recipient="5000001", template="t", text="hi", send_at=now,
                expires_at=now + timedelta(hours=1),
            )
        ]
    )  # fmt: skip
    context = build_sensor_context(cursor=None)
    assert isinstance(failing_deliveries(context), SkipReason)
    with outbox.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE outbox_messages SET state = 'dead', provider = 'telegram', "
                "error_code = 'blocked', updated_at = :t"
            ),
            {"t": (now + timedelta(seconds=5)).replace(tzinfo=None)},
        )
    outbox.dispose()
    result = failing_deliveries(build_sensor_context(cursor=(now - timedelta(1)).isoformat()))
    evaluation = result.asset_events[0]
    assert evaluation.check_name == "delivery_failures" and not evaluation.passed
    assert evaluation.metadata["dead"].value == 1
