"""Sensors request one run per new file and skip when nothing is new."""

from __future__ import annotations

import os
import time

from dagster import RunRequest, SkipReason, build_sensor_context

from orchestration.sensors import partner_files, spool_segments
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
