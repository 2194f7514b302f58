"""Ingestion sensors: new closed spool segments, new partner files.

They never open the warehouse (in embedded mode a run may hold it): they look at files
and key each run request by the newest file they saw, so a file triggers one run.
"""

from collections.abc import Iterator
from pathlib import Path

from dagster import RunRequest, SensorEvaluationContext, SkipReason, sensor

from orchestration.defs.ingestion.assets import message_export, partner_dir
from orchestration.defs.ingestion.jobs import ingest_partners, ingest_webhooks
from revisit.settings import get_settings


def _newest(paths: list[Path]) -> tuple[float, str] | None:
    stamped = [(p.stat().st_mtime, p.name) for p in paths if p.is_file()]
    return max(stamped) if stamped else None


def _files_since(cursor: str | None, paths: list[Path]) -> tuple[list[Path], str | None]:
    since = float(cursor) if cursor else 0.0
    fresh = [p for p in paths if p.is_file() and p.stat().st_mtime > since]
    newest = _newest(fresh)
    return fresh, (str(newest[0]) if newest else cursor)


@sensor(job=ingest_webhooks, minimum_interval_seconds=60)
def spool_segments(context: SensorEvaluationContext) -> Iterator[RunRequest | SkipReason]:
    """A run of the spool loader when webhook segments have been closed."""
    closed = sorted((get_settings().spool_dir / "webhooks").glob("*.closed.jsonl"))
    fresh, cursor = _files_since(context.cursor, closed)
    if not fresh:
        yield SkipReason("no newly closed spool segment")
        return
    context.update_cursor(cursor)
    yield RunRequest(run_key=f"spool-{cursor}", tags={"segments": str(len(fresh))})


@sensor(job=ingest_partners, minimum_interval_seconds=300)
def partner_files(context: SensorEvaluationContext) -> Iterator[RunRequest | SkipReason]:
    """A run of the partner loaders when partner files or the message export change."""
    root = get_settings().source_dir
    files = [p for p in partner_dir(root).rglob("*") if p.is_file()]
    files += [message_export(root)]
    fresh, cursor = _files_since(context.cursor, files)
    if not fresh:
        yield SkipReason("no new partner file")
        return
    context.update_cursor(cursor)
    yield RunRequest(run_key=f"partners-{cursor}", tags={"files": str(len(fresh))})


SENSORS = [spool_segments, partner_files]
