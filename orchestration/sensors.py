"""Sensors: new closed spool segments, new partner files, failing deliveries.

They never open the warehouse (in embedded mode a run may hold it): the first two look
at files and key each run request by the newest file they saw, so a file triggers one
run; the third reads the outbox (the transactional state store).
"""

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from orchestration.assets.activation import DELIVERIES
from orchestration.jobs import partner_job, spool_job
from revisit.settings import get_settings


def _newest(paths: list[Path]) -> tuple[float, str] | None:
    stamped = [(p.stat().st_mtime, p.name) for p in paths if p.is_file()]
    return max(stamped) if stamped else None


def _files_since(cursor: str | None, paths: list[Path]) -> tuple[list[Path], str | None]:
    since = float(cursor) if cursor else 0.0
    fresh = [p for p in paths if p.is_file() and p.stat().st_mtime > since]
    newest = _newest(fresh)
    return fresh, (str(newest[0]) if newest else cursor)


@sensor(job=spool_job, minimum_interval_seconds=60)
def spool_segments(context: SensorEvaluationContext) -> Iterator[RunRequest | SkipReason]:
    """A run of the spool loader when webhook segments have been closed."""
    closed = sorted((get_settings().spool_dir / "webhooks").glob("*.closed.jsonl"))
    fresh, cursor = _files_since(context.cursor, closed)
    if not fresh:
        yield SkipReason("no newly closed spool segment")
        return
    context.update_cursor(cursor)
    yield RunRequest(run_key=f"spool-{cursor}", tags={"segments": str(len(fresh))})


@sensor(job=partner_job, minimum_interval_seconds=300)
def partner_files(context: SensorEvaluationContext) -> Iterator[RunRequest | SkipReason]:
    """A run of the partner loaders when partner files or the message export change."""
    root = get_settings().source_dir
    files = [p for p in (root / "partners").rglob("*") if p.is_file()]
    files += [root / "messages" / "sends.jsonl"]
    fresh, cursor = _files_since(context.cursor, files)
    if not fresh:
        yield SkipReason("no new partner file")
        return
    context.update_cursor(cursor)
    yield RunRequest(run_key=f"partners-{cursor}", tags={"files": str(len(fresh))})


@sensor(minimum_interval_seconds=300)
def failing_deliveries(context: SensorEvaluationContext) -> SensorResult | SkipReason:
    """Reports outbox rows that failed or went dead since the last look as a failed
    `delivery_failures` check on activation/deliveries, with counts per provider and
    error code and a few examples."""
    from activation.contracts import State
    from activation.outbox import Outbox

    since = dt.datetime.fromisoformat(context.cursor) if context.cursor else None
    now = dt.datetime.now(dt.UTC)
    outbox = Outbox(get_settings().state_dsn)
    try:
        failed = [
            row
            for kind in ("message", "accrual")
            for state in (State.failed, State.dead)
            for row in outbox.rows(kind, state=state, since=since)
        ]
    finally:
        outbox.dispose()
    context.update_cursor(now.isoformat())
    if not failed:
        return SkipReason("no failing delivery")
    by_code = Counter(f"{r['provider']}:{r['error_code']} ({r['state']})" for r in failed)
    examples = [
        f"{r['idempotency_key']}: {r['provider']} {r['error_code']} — {r['last_error']}"
        for r in failed[:5]
    ]
    return SensorResult(
        asset_events=[
            AssetCheckEvaluation(
                asset_key=DELIVERIES,
                check_name="delivery_failures",
                passed=False,
                severity=AssetCheckSeverity.WARN,
                metadata={
                    "failed": len(failed),
                    "dead": sum(r["state"] == State.dead.value for r in failed),
                    "by_provider_and_code": MetadataValue.json(dict(by_code)),
                    "examples": MetadataValue.md("\n".join(f"- {e}" for e in examples)),
                },
            )
        ]
    )


SENSORS = [spool_segments, partner_files, failing_deliveries]
