"""Idempotent bulk loads into raw tables.

A load is a *batch*: one file, one API page set, one spool segment, with a
stable `batch_id` derived from its content or name. `raw.load_batches` records
each batch as `started` then `done`:

- a batch already `done` is skipped, so reruns insert nothing;
- a batch left `started` by a crash has its partial rows deleted before it is
  loaded again, so a kill half-way followed by a rerun gives exactly one copy;
- rows re-delivered in a *different* batch collapse on the table's key through
  ReplacingMergeTree(`_version`) — staging reads the latest version (`FINAL`).

Large batches can skip the collapse at insert time (`collapse_on_insert=False`,
ClickHouse's `optimize_on_insert=0`): on a 1M-row CRM file the collapse is about a
third of the insert's CPU, and readers get the same rows through `FINAL`; only a
plain `count()` would see a key repeated *within* one batch until the next merge.

Rows travel as Arrow. On the embedded engine the insert reads the Arrow table in
place (chDB's `Python()` table function); a server gets Arrow IPC over HTTP. A batch
may also be rows the engine computes itself (`EngineRows`: a SELECT over an Arrow table
held as an `ArrowSource`), so that typing and validation run in SQL; every part of a
batch goes through `insert_frame`, the one place raw rows enter a table. A loader that
decides part of a batch after inserting another uses `open_batch` (an `OpenBatch`:
insert parts, then `finish`), which `load_batch` is built on.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from chdb import connect as chdb_connect
from clickhouse_connect.driver._chdbclient import ChdbClient
from clickhouse_connect.driver.binding import format_query_value, quote_identifier
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from warehouse.schema import ensure_raw_tables


@dataclass(frozen=True)
class LoadResult:
    table: str
    batch_id: str
    rows_loaded: int
    rows_quarantined: int
    skipped: bool


def batch_status(client: Client, table: str, batch_id: str) -> str | None:
    """`done`, `started`, or None when the batch was never seen."""
    rows = client.query(
        "SELECT argMax(status, _version) FROM raw.load_batches "
        "WHERE target_table = {t:String} AND _batch_id = {b:String} HAVING count() > 0",
        parameters={"t": table, "b": batch_id},
    ).result_rows
    return rows[0][0] if rows else None


def done_batches(client: Client, table: str) -> set[str]:
    """Ids of the batches of `table` that are `done` (one query for a whole directory)."""
    rows = client.query(
        "SELECT _batch_id FROM raw.load_batches WHERE target_table = {t:String} "
        "GROUP BY _batch_id HAVING argMax(status, _version) = 'done'",
        parameters={"t": table},
    ).result_rows
    return {row[0] for row in rows}


def _record_batch(
    client: Client, table: str, batch_id: str, source: str, status: str, rows: int, quarantined: int
) -> None:
    now = datetime.now(UTC)
    client.insert(
        "raw.load_batches",
        [[table, status, rows, quarantined, now, now if status == "done" else None,
          batch_id, source, 0, time.time_ns()]],
        column_names=[
            "target_table", "status", "rows_loaded", "rows_quarantined", "started_at",
            "finished_at", "_batch_id", "_source", "_row", "_version",
        ],
    )  # fmt: skip


def _server_type(arrow: pa.DataType) -> str | None:
    """The ClickHouse type a stage table column of this Arrow type has (None: unmapped)."""
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return "String"
    if pa.types.is_timestamp(arrow):
        scale = {"s": 0, "ms": 3, "us": 6, "ns": 9}[arrow.unit]
        return f"DateTime64({scale}, {format_query_value(arrow.tz or 'UTC')})"
    if pa.types.is_decimal(arrow):
        return f"Decimal({arrow.precision}, {arrow.scale})"
    if pa.types.is_date32(arrow):
        return "Date32"
    if pa.types.is_boolean(arrow):
        return "Bool"
    if pa.types.is_integer(arrow):
        return f"{'UInt' if pa.types.is_unsigned_integer(arrow) else 'Int'}{arrow.bit_width}"
    if pa.types.is_floating(arrow):
        return f"Float{arrow.bit_width}"
    return None


class ArrowSource:
    """An Arrow table the engine reads as a relation, for several queries over one read.

    Embedded engine: `relation` is `Python(_revisit_rows)`, chDB reading the table's
    buffers in this process, on a connection of its own (the client's handle is private
    to clickhouse-connect and serialises its queries; each loader thread gets its own).
    Server: the table is sent once (Arrow over HTTP) into a `Memory` table
    `raw._stage_<uuid>` that lives for the `with` block, so one SQL text serves both.
    """

    def __init__(self, client: Client, table: pa.Table) -> None:
        self.client, self.table = client, table
        self.relation = ""
        self._connection: Any = None

    def __enter__(self) -> ArrowSource:
        if isinstance(self.client, ChdbClient):
            self._connection = chdb_connect(os.path.realpath(self.client.path))
            self.relation = "Python(_revisit_rows)"
            return self
        table = self.table
        for i, field in enumerate(table.schema):
            if _server_type(field.type) is None:  # e.g. a column the reader found empty
                table = table.set_column(i, field.name, table.column(i).cast(pa.string()))
        columns = ", ".join(
            f"{quote_identifier(f.name)} "
            + (f"Nullable({_server_type(f.type)})" if f.nullable else str(_server_type(f.type)))
            for f in table.schema
        )
        self.relation = f"raw.{quote_identifier('_stage_' + uuid.uuid4().hex)}"
        self.client.command(f"CREATE TABLE {self.relation} ({columns}) ENGINE = Memory")
        try:
            self.client.insert_arrow(self.relation, table)
        except Exception:
            self.client.command(f"DROP TABLE IF EXISTS {self.relation}")
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        else:
            self.client.command(f"DROP TABLE IF EXISTS {self.relation}")

    def query_arrow(self, sql: str) -> pa.Table:
        """Run a SELECT (naming `self.relation`) and return its result as Arrow."""
        if self._connection is None:
            return self.client.query_arrow(sql)
        _revisit_rows = self.table  # `Python(_revisit_rows)` is resolved by name
        try:
            return self._connection.query(sql, "ArrowTable")
        except RuntimeError as exc:  # chdb's connection raises a RuntimeError subclass
            raise DatabaseError(f"query failed: {exc}") from exc

    def command(self, sql: str) -> int | None:
        """Run a statement (an INSERT … SELECT naming `self.relation`); the rows it wrote
        when the engine reports them (embedded), else None."""
        if self._connection is None:
            self.client.command(sql)
            return None
        _revisit_rows = self.table  # `Python(_revisit_rows)` is resolved by name
        try:
            return int(self._connection.query(sql).rows_written())
        except RuntimeError as exc:
            raise DatabaseError(f"statement failed: {exc}") from exc


@dataclass(frozen=True)
class EngineRows:
    """Rows of a batch that the engine computes: `select` (a SELECT over `source.relation`
    giving `columns`, bookkeeping included) yields `rows` rows, or (None) as many as it
    selects, counted by the insert (`OpenBatch.insert`). Loaded like a frame."""

    source: ArrowSource
    columns: tuple[str, ...]
    select: str
    rows: int | None = None


def with_bookkeeping(frame: pd.DataFrame, batch_id: str, source: str) -> pd.DataFrame:
    """The frame plus `_batch_id`, `_source`, `_row` and (unless given) `_version`."""
    out = frame.copy(deep=False)
    # One-category columns: Arrow sends them as a dictionary (one string, not a copy per
    # row), which the engine keeps as LowCardinality (or expands, into the String columns
    # of tables created before); a 1M-row insert moves ~70 MB less.
    codes = np.zeros(len(out), dtype=np.int8)
    out["_batch_id"] = pd.Categorical.from_codes(codes, categories=[batch_id])
    out["_source"] = pd.Categorical.from_codes(codes, categories=[source])
    if "_row" not in out.columns:
        out["_row"] = np.arange(len(out), dtype=np.uint64)
    if "_version" not in out.columns:
        # Load time plus the row's position: a key repeated within one batch has a last
        # row that wins deterministically (with one version for the whole batch the engine
        # picked either, depending on how the insert's sort ordered equal keys). Batches
        # are loaded far more than a nanosecond per row apart, so a later batch still wins.
        out["_version"] = np.uint64(time.time_ns()) + out["_row"].to_numpy(dtype=np.uint64)
    return out


def _settings_clause(settings: dict[str, Any] | None) -> str:
    clause = ", ".join(
        f"{name} = {format_query_value(value)}" for name, value in (settings or {}).items()
    )
    return f" SETTINGS {clause}" if clause else ""


def insert_frame(
    client: Client,
    table: str,
    frame: pd.DataFrame | EngineRows,
    settings: dict[str, Any] | None = None,
) -> int | None:
    """Insert a DataFrame, as Arrow when it converts cleanly, or rows the engine computes.

    Arrow is read by the engine itself, several times faster than clickhouse-connect's
    row-wise Python serialisation of `insert_df`; columns Arrow cannot type (mixed
    Python objects) fall back to `insert_df`. `EngineRows`: `INSERT … SELECT` run where
    its Arrow source is readable. `settings`: ClickHouse settings of the insert.
    Returns the rows inserted: a frame's length; for `EngineRows` what the engine
    reports having written (None on a server, which does not say).
    """
    if isinstance(frame, EngineRows):
        columns = ", ".join(quote_identifier(c) for c in frame.columns)
        return frame.source.command(
            f"INSERT INTO {table} ({columns}) {frame.select}{_settings_clause(settings)}"
        )
    try:
        arrow = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        client.insert_df(table, frame, settings=settings)
        return len(frame)
    insert_arrow(client, table, arrow, settings)
    return len(frame)


def insert_arrow(
    client: Client, table: str, arrow: pa.Table, settings: dict[str, Any] | None = None
) -> None:
    """Insert an Arrow table (columns named as the table's).

    Embedded engine: `INSERT … SELECT … FROM Python(arrow)`, the engine reading the
    table's buffers in this process. clickhouse-connect's `insert_arrow` would write
    Arrow IPC to a temporary file and have the engine parse it back: on a 1M-row CRM
    file that round trip is about a third of the insert's CPU. Server: `insert_arrow`.
    """
    if not isinstance(client, ChdbClient):
        client.insert_arrow(table, arrow, settings=settings)
        return
    columns = ", ".join(quote_identifier(name) for name in arrow.column_names)
    sql = f"INSERT INTO {table} ({columns}) SELECT {columns} FROM Python(arrow)"
    sql += _settings_clause(settings)
    # A handle of its own on the client's engine (chDB allows many per process): the
    # client's handle is private to clickhouse-connect. `Python(arrow)` is resolved by
    # name from this frame's locals.
    connection = chdb_connect(os.path.realpath(client.path))
    try:
        connection.query(sql)
    except RuntimeError as exc:  # chdb's connection raises a RuntimeError subclass
        raise DatabaseError(f"insert into {table} failed: {exc}") from exc
    finally:
        connection.close()


def begin_batch(client: Client, table: str, batch_id: str, source: str) -> bool:
    """Mark a batch `started` (after removing what a crashed attempt left); False when the
    batch is already `done` (nothing to load)."""
    status = batch_status(client, table, batch_id)
    if status == "done":
        return False
    if status == "started":
        # A previous attempt died half-way: drop what it wrote, then load again. The
        # DELETE is a mutation, run by the merge pool: merges must run (`merges_paused`).
        if isinstance(client, ChdbClient):
            client.command(f"SYSTEM START MERGES raw.{table}")
        for target in (table, "quarantine"):
            client.command(
                f"DELETE FROM raw.{target} WHERE _batch_id = {{b:String}}",
                parameters={"b": batch_id},
            )
    _record_batch(client, table, batch_id, source, "started", 0, 0)
    return True


class OpenBatch:
    """A batch begun (`open_batch`) and not yet done: insert its parts, then `finish`.

    For loaders that decide part of a batch after inserting another part (the engine CSV
    path inserts the rows it accepts, then prepares the rest). Used as a context manager,
    an exception before `finish` removes what the batch inserted (a crash leaves that to
    the next run's `begin_batch`), so a file that fails half-way leaves no rows behind.
    """

    def __init__(
        self, client: Client, table: str, batch_id: str, source: str, collapse_on_insert: bool
    ) -> None:
        self.client, self.table, self.batch_id, self.source = client, table, batch_id, source
        self.settings = None if collapse_on_insert else {"optimize_on_insert": 0}
        self.rows = 0  # rows inserted so far (those of EngineRows parts the engine counted)

    def insert(self, part: pd.DataFrame | EngineRows) -> int | None:
        """Insert one part (a frame gets its bookkeeping here); returns its rows, None for
        `EngineRows` without a count whose insert the engine did not count (a server):
        the caller then adds them to `rows` itself."""
        if isinstance(part, pd.DataFrame):
            if not len(part):
                return 0
            part = with_bookkeeping(part, self.batch_id, self.source)
        elif part.rows == 0:
            return 0
        written = insert_frame(self.client, f"raw.{self.table}", part, self.settings)
        if isinstance(part, EngineRows) and part.rows is not None:
            written = part.rows
        if written is not None:
            self.rows += written
        return written

    def restart(self) -> None:
        """Remove every row inserted so far and begin the batch again (rare: a part whose
        insert failed part-way, then loaded another way)."""
        begin_batch(self.client, self.table, self.batch_id, self.source)
        self.rows = 0

    def finish(self, quarantine: pd.DataFrame | None = None) -> LoadResult:
        """Insert the rejected rows (columns of `raw.quarantine`) and mark the batch done."""
        rejected = 0 if quarantine is None else len(quarantine)
        if rejected:
            q = quarantine.assign(source_table=self.table)
            insert_frame(
                self.client, "raw.quarantine", with_bookkeeping(q, self.batch_id, self.source)
            )
        _record_batch(
            self.client, self.table, self.batch_id, self.source, "done", self.rows, rejected
        )
        return LoadResult(self.table, self.batch_id, self.rows, rejected, skipped=False)

    def __enter__(self) -> OpenBatch:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is not None and issubclass(kind, Exception):
            # The original error matters more; a failed cleanup is left to a rerun.
            with suppress(Exception):
                self.restart()


def open_batch(
    client: Client, table: str, *, batch_id: str, source: str, collapse_on_insert: bool = True
) -> OpenBatch | None:
    """Begin a batch of `raw.<table>` (`begin_batch`); None when it is already done."""
    if not begin_batch(client, table, batch_id, source):
        return None
    return OpenBatch(client, table, batch_id, source, collapse_on_insert)


def load_batch(
    client: Client,
    table: str,
    frame: pd.DataFrame | EngineRows | Sequence[pd.DataFrame | EngineRows],
    *,
    batch_id: str,
    source: str,
    quarantine: pd.DataFrame | None = None,
    collapse_on_insert: bool = True,
) -> LoadResult:
    """Load one batch into `raw.<table>` (and its rejected rows into `raw.quarantine`), once.

    `frame` holds the table's own columns (bookkeeping is added here), or is several
    parts (frames and `EngineRows`, which carry their own bookkeeping), each inserted
    in turn. `quarantine` holds rows rejected by validation, in the columns of
    `raw.quarantine`. `collapse_on_insert=False` leaves rows repeating a key within
    this batch to the next merge / `FINAL` instead of collapsing them while inserting
    (see the module doc).
    """
    batch = open_batch(
        client, table, batch_id=batch_id, source=source, collapse_on_insert=collapse_on_insert
    )
    if batch is None:
        return LoadResult(table, batch_id, 0, 0, skipped=True)
    parts = [frame] if isinstance(frame, (pd.DataFrame, EngineRows)) else list(frame)
    for part in parts:
        if isinstance(part, EngineRows) and part.rows is None:
            raise ValueError("load_batch needs the row count of an EngineRows part")
        batch.insert(part)
    return batch.finish(quarantine)


@contextmanager
def merges_paused(client: Client, table: str) -> Iterator[None]:
    """Background merges of `raw.<table>` paused for the block (embedded engine only).

    For a bulk load of many large batches: each batch writes its own part, and merging
    parts while later ones are still arriving merges the same rows again and again and
    takes CPU from the load. With merges paused, the parts of the whole load are merged
    once, in the background, after the block; `FINAL` reads are correct meanwhile. On a
    server other sessions share the table (and SYSTEM needs a privilege): no pause there.
    A DELETE is a mutation, run by the merge pool: `load_batch` resumes merges before
    it cleans up a batch left `started` by a crash, so such a batch ends the pause early.
    """
    if not isinstance(client, ChdbClient):
        yield
        return
    client.command(f"SYSTEM STOP MERGES raw.{table}")
    try:
        yield
    finally:
        client.command(f"SYSTEM START MERGES raw.{table}")


def prepare_raw(client: Client) -> None:
    """Databases and raw tables, created when missing (cheap to call before every load)."""
    ensure_raw_tables(client)
