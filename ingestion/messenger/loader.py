"""Spool → ``raw.messenger_events``: each closed segment loaded exactly once.

For every closed segment (opening order) the loader parses the records into canonical events
(`ingestion.messenger.events`), loads them with `warehouse.load.load_batch` using the segment
id as batch id, then moves the file to ``<spool root>/loaded/``. A kill between the load and
the move is harmless: the next run finds the batch ``done`` in ``raw.load_batches``, skips it
and only moves the file. Open segments left by dead receivers are closed first (the ones of
live receivers are left alone), so the loader can run while the receiver is up.

Bad records go to ``raw.quarantine`` with ``source_kind='messenger_webhook'``, ``row_ref`` =
``<line>`` or ``<line>/entry0.change0.statuses1`` (1-based line in the segment), the field and
reason; everything else in the segment still loads.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from clickhouse_connect.driver.client import Client

from ingestion import quality
from ingestion.messenger.events import EVENT_COLUMNS, Rejected, record_events
from ingestion.messenger.spool import (
    LOADED_DIR,
    SpoolRecord,
    closed_segments,
    read_segment,
    recover_open_segments,
    segment_id,
)
from warehouse.load import LoadResult, batch_status, load_batch, prepare_raw

log = logging.getLogger(__name__)

TABLE = "messenger_events"
SOURCE_KIND = "messenger_webhook"
QUARANTINE_COLUMNS = quality.QUARANTINE_COLUMNS
_TIME_COLUMNS = ("occurred_at", "received_at")


def parse_segment(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events frame in EVENT_COLUMNS + ``_row``, quarantine frame) for one segment file."""
    rows: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    for item in read_segment(path):
        if isinstance(item, SpoolRecord):
            events, bad = record_events(item, str(item.line))
            for event in events:
                event["_row"] = item.line
            rows.extend(events)
            rejected.extend(bad)
        else:
            line, raw, error = item
            rejected.append(
                Rejected(str(line), "record", str(error), raw.decode("utf-8", errors="replace"))
            )
    return _events_frame(rows), _quarantine_frame(rejected)


def _events_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    data: dict[str, Any] = {}
    for column in EVENT_COLUMNS:
        values = [row[column] for row in rows]
        if column in _TIME_COLUMNS:
            data[column] = pd.to_datetime(pd.Series(values, dtype=object), utc=True).astype(
                "datetime64[ms, UTC]"
            )
        else:
            data[column] = pd.Series(values, dtype=object)
    data["_row"] = np.array([row["_row"] for row in rows], dtype=np.uint64)
    return pd.DataFrame(data)


def _quarantine_frame(rejected: list[Rejected]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source_kind": pd.Series([SOURCE_KIND] * len(rejected), dtype=object),
            "row_ref": pd.Series([r.row_ref for r in rejected], dtype=object),
            "field": pd.Series([r.field for r in rejected], dtype=object),
            "reason": pd.Series([r.reason for r in rejected], dtype=object),
            "raw_row": pd.Series([r.raw for r in rejected], dtype=object),
        },
        columns=list(QUARANTINE_COLUMNS),
    )


def _mark_loaded(path: Path) -> Path:
    target_dir = path.parent / LOADED_DIR
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    os.replace(path, target)
    return target


def load_segment(client: Client, path: Path) -> LoadResult:
    """Load one closed segment once (batch id = segment id), then move it to ``loaded/``."""
    batch = segment_id(path)
    if batch_status(client, TABLE, batch) == "done":
        result = LoadResult(TABLE, batch, 0, 0, skipped=True)
    else:
        frame, quarantine = parse_segment(path)
        result = load_batch(
            client, TABLE, frame, batch_id=batch, source=path.name, quarantine=quarantine
        )
        if result.rows_quarantined:
            log.warning(
                "spool segment %s: %d part(s) quarantined (raw.quarantine, source_kind=%s)",
                path.name,
                result.rows_quarantined,
                SOURCE_KIND,
            )
    _mark_loaded(path)
    return result


def load_spool(client: Client, spool_dir: Path) -> list[LoadResult]:
    """Load every closed webhook segment under ``spool_dir / "webhooks"`` exactly once.

    `spool_dir` is ``settings.spool_dir``. Returns one LoadResult per segment handled
    (``skipped=True`` for a segment a previous, interrupted run had already loaded).
    """
    root = spool_dir / "webhooks"
    recover_open_segments(root)
    prepare_raw(client)
    return [load_segment(client, path) for path in closed_segments(root)]
