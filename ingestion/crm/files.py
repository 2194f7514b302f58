"""CRM file drops: `crm/exports/<business_id>/` CSV, Excel and Parquet files.

Each file is one batch (id = entity + relative path + content hash), so reloading a file
is a no-op and a load killed half-way is cleaned up and redone by `load_batch`. The
entity comes from the file name (`customers.xlsx`, `appointments_202405.csv`,
`services.parquet`, …); fields go through the same field map as the API.

CSV fast path: pyarrow.csv reads the file with the field map's types (timestamps,
decimals, ints parsed in C++). If any value does not convert, the file
is read again with every column as text and typed per cell, so only the bad rows are
quarantined. A file that cannot be read at all becomes a FileError naming the file and
the problem; the other files still load.

Throughput: two files are loaded at once, each read, validated and inserted by its
own worker thread, so one file's parsing overlaps the other's insert (the engine's
insert of one part is single-threaded). The insert skips ReplacingMergeTree's
in-insert collapse (raw tables are read with FINAL), and on the embedded engine it
reads the Arrow table in place (`warehouse.load.insert_arrow`). Each file is one
part; the table's background merges wait until the entity's last file is in, so the
parts are merged once rather than again and again while later files arrive. Files
whose batch is already done are not read again.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from clickhouse_connect.driver.client import Client

from ingestion.crm.api import business_regions
from ingestion.crm.mapping import (
    DECIMAL,
    ENTITIES,
    EntityMap,
    FieldMap,
    MappingError,
    Prepared,
    load_field_map,
    prepare,
)
from warehouse.load import LoadResult, done_batches, load_batch, merges_paused, prepare_raw

SUFFIXES = (".csv", ".xlsx", ".parquet")
_ARROW_TYPES = {
    "string": pa.string(),
    "phone": pa.string(),
    "timestamp": pa.timestamp("ms", tz="UTC"),
    "date": pa.date32(),
    "decimal": DECIMAL,
    "int": pa.int64(),
    "bool": pa.bool_(),
}
# Files loaded at once: each worker reads, validates and inserts one file, so one file's
# parsing and validation overlap the other's insert (single-threaded in the engine).
LOAD_WORKERS = 2
# What makes one file fail as a whole (reported as a FileError; the other files load).
_FILE_ERRORS = (MappingError, pa.ArrowException, OSError, ValueError, KeyError)


@dataclass(frozen=True)
class FileError:
    """A file that could not be loaded at all."""

    path: str
    error: str

    def __str__(self) -> str:
        return f"{self.path}: {self.error}"


def entity_of(path: Path) -> str | None:
    """`appointments_202405.csv` → "appointments"; None for files of no known entity."""
    stem = path.stem.lower()
    for entity in sorted(ENTITIES, key=len, reverse=True):
        if stem == entity or stem.startswith(entity + "_") or stem.startswith(entity + "-"):
            return entity
    return None


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    # Decimals stay arrow decimals (exact, vectorised); the rest use pandas defaults.
    def mapper(t: pa.DataType) -> Any:
        return pd.ArrowDtype(t) if pa.types.is_decimal(t) else None

    return table.to_pandas(types_mapper=mapper)


def read_csv(path: Path, entity_map: EntityMap, options: Mapping[str, Any]) -> pd.DataFrame:
    """CSV → frame with the field map's types when every value converts, else text."""
    # Single-threaded parse: files load `LOAD_WORKERS` at a time, which already keeps
    # the cores busy; pyarrow's own threads on top only add contention (~5-10%).
    read = pacsv.ReadOptions(
        encoding=options.get("encoding", "utf-8"), block_size=1 << 24, use_threads=False
    )
    parse = pacsv.ParseOptions(delimiter=options.get("delimiter", ","))
    typed = {
        f.source: _ARROW_TYPES[f.type]
        for f in entity_map.fields
        if f.type != "timestamp" or not f.format
    }
    convert = pacsv.ConvertOptions(
        column_types=typed,
        strings_can_be_null=True,
        null_values=[""],
        true_values=["true", "True", "TRUE", "1"],
        false_values=["false", "False", "FALSE", "0"],
        timestamp_parsers=[pacsv.ISO8601],
    )
    try:
        return _to_pandas(pacsv.read_csv(path, read, parse, convert))
    except pa.ArrowInvalid as exc:
        if "CSV conversion error" not in str(exc) and "In CSV column" not in str(exc):
            raise
    text = pacsv.ConvertOptions(
        column_types={f.source: pa.string() for f in entity_map.fields},
        strings_can_be_null=True,
        null_values=[""],
    )
    return _to_pandas(pacsv.read_csv(path, read, parse, text))


def read_file(path: Path, entity_map: EntityMap, field_map: FieldMap) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv(path, entity_map, field_map.csv_options)
    if suffix == ".xlsx":
        return pd.read_excel(path, engine="openpyxl", dtype=object)
    if suffix == ".parquet":
        return _to_pandas(pq.read_table(path))
    raise MappingError(f"unsupported file type {suffix!r}")


@dataclass(frozen=True)
class PreparedFile:
    """One export file read, mapped and validated: what `load_batch` needs.
    `prepared` is None when the file's batch was already done (the file was not read)."""

    table: str
    batch_id: str
    source: str
    prepared: Prepared | None


def prepare_file(
    path: Path,
    *,
    root: Path,
    field_map: FieldMap,
    regions: Mapping[str, str] | None = None,
    entity: str | None = None,
    done: Collection[str] = (),
) -> PreparedFile:
    """Read one export file and prepare its batch, unless its batch id is in `done`.

    No warehouse access, so it can run in a worker thread. Raises on an unreadable file.
    """
    entity = entity or entity_of(path)
    if entity is None:
        raise MappingError(f"file name names no CRM entity (one of {ENTITIES})")
    entity_map = field_map.entity(entity)
    relative = path.relative_to(root).as_posix()
    batch_id = (
        f"crm-file-{entity}-"
        + hashlib.sha256(f"{relative}\0{file_digest(path)}".encode()).hexdigest()[:32]
    )
    if batch_id in done:
        return PreparedFile(entity_map.table, batch_id, relative, None)
    frame = read_file(path, entity_map, field_map)
    # Line numbers of the rows in the file (header is line 1).
    row_ref = pd.Series(np.arange(2, len(frame) + 2, dtype=np.int64))
    prepared = prepare(entity_map, frame, source_kind="crm_file", row_ref=row_ref, regions=regions)
    return PreparedFile(entity_map.table, batch_id, relative, prepared)


def load_prepared(client: Client, file: PreparedFile) -> LoadResult:
    """Load a prepared file as one batch (skipped when that batch is already done)."""
    if file.prepared is None:
        return LoadResult(file.table, file.batch_id, 0, 0, skipped=True)
    return load_batch(
        client,
        file.table,
        file.prepared.frame,
        batch_id=file.batch_id,
        source=file.source,
        quarantine=file.prepared.quarantine,
        # Exports are large and raw tables are read with FINAL: collapsing keys
        # repeated inside one file while inserting costs ~1.5x the insert's CPU.
        collapse_on_insert=False,
    )


def load_file(
    client: Client,
    path: Path,
    *,
    root: Path,
    field_map: FieldMap,
    regions: Mapping[str, str] | None = None,
    entity: str | None = None,
    done: Collection[str] = (),
) -> LoadResult:
    """Load one export file as one batch (not read when its batch id is in `done`).
    Raises on an unreadable file."""
    prepared = prepare_file(
        path, root=root, field_map=field_map, regions=regions, entity=entity, done=done
    )
    return load_prepared(client, prepared)


def _load_or_error(
    client: Client,
    path: Path,
    *,
    root: Path,
    field_map: FieldMap,
    regions: Mapping[str, str] | None,
    done: Collection[str],
) -> LoadResult | FileError:
    try:
        return load_file(client, path, root=root, field_map=field_map, regions=regions, done=done)
    except _FILE_ERRORS as exc:
        return FileError(str(path), f"{type(exc).__name__}: {exc}")


def load_crm_exports(
    client: Client,
    exports_dir: Path | str,
    *,
    field_map: FieldMap | None = None,
) -> tuple[list[LoadResult], list[FileError]]:
    """Load every export under `exports_dir` (`<business_id>/<entity>*.{csv,xlsx,parquet}`).

    Businesses and locations load before customers (whose phone region is the
    business's country, from raw.crm_businesses). Returns the load results and the
    files that failed as a whole (each error names the file and the problem).

    Within one entity, `LOAD_WORKERS` threads each read, validate and insert one file
    (pyarrow's reader and the engine release the GIL), so one file's parsing overlaps
    another's insert; at most `LOAD_WORKERS` prepared files are held in memory.
    Files whose batch is already done are hashed but not read. Merges of the entity's
    table are paused until its last file is in (`merges_paused`).
    """
    field_map = field_map or load_field_map()
    root = Path(exports_dir)
    prepare_raw(client)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    order = {e: i for i, e in enumerate(ENTITIES)}
    files.sort(key=lambda p: (order.get(entity_of(p) or "", len(order)), p.as_posix()))
    outcomes: list[LoadResult | FileError] = []
    with ThreadPoolExecutor(max_workers=LOAD_WORKERS, thread_name_prefix="crm-file") as pool:
        for entity, group in itertools.groupby(files, key=entity_of):
            # Customers' phone regions need every business loaded: a barrier per entity.
            regions = business_regions(client) if entity == "customers" else None
            table = field_map.entities[entity].table if entity in field_map.entities else None
            done = done_batches(client, table) if table else set()
            # One part per file: merge them once, after the entity's last file.
            with merges_paused(client, table) if table else nullcontext():
                load = partial(
                    _load_or_error,
                    client,
                    root=root,
                    field_map=field_map,
                    regions=regions,
                    done=done,
                )
                outcomes.extend(pool.map(load, group))
    results = [o for o in outcomes if isinstance(o, LoadResult)]
    errors = [o for o in outcomes if isinstance(o, FileError)]
    return results, errors
