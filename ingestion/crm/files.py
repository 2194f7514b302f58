"""CRM file drops: `crm/exports/<business_id>/` CSV, Excel and Parquet files.

Each file is one batch (id = entity + relative path + content hash), so reloading a file
is a no-op and a load killed half-way is cleaned up and redone by `load_batch`. The
entity comes from the file name (`customers.xlsx`, `appointments_202405.csv`,
`services.parquet`, …); fields go through the same field map as the API.

CSV fast path: pyarrow.csv reads the file with the field map's types (timestamps,
decimals, ints parsed in C++, multi-threaded). If any value does not convert, the file
is read again with every column as text and typed per cell, so only the bad rows are
quarantined. A file that cannot be read at all becomes a FileError naming the file and
the problem; the other files still load.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
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
    load_field_map,
    prepare,
)
from warehouse.load import LoadResult, load_batch, prepare_raw

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
    read = pacsv.ReadOptions(encoding=options.get("encoding", "utf-8"), block_size=1 << 24)
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


def load_file(
    client: Client,
    path: Path,
    *,
    root: Path,
    field_map: FieldMap,
    regions: Mapping[str, str] | None = None,
    entity: str | None = None,
) -> LoadResult:
    """Load one export file as one batch. Raises on an unreadable file."""
    entity = entity or entity_of(path)
    if entity is None:
        raise MappingError(f"file name names no CRM entity (one of {ENTITIES})")
    entity_map = field_map.entity(entity)
    relative = path.relative_to(root).as_posix()
    batch_id = (
        f"crm-file-{entity}-"
        + hashlib.sha256(f"{relative}\0{file_digest(path)}".encode()).hexdigest()[:32]
    )
    frame = read_file(path, entity_map, field_map)
    # Line numbers of the rows in the file (header is line 1).
    row_ref = pd.Series(np.arange(2, len(frame) + 2, dtype=np.int64))
    prepared = prepare(entity_map, frame, source_kind="crm_file", row_ref=row_ref, regions=regions)
    return load_batch(
        client,
        entity_map.table,
        prepared.frame,
        batch_id=batch_id,
        source=relative,
        quarantine=prepared.quarantine,
    )


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
    """
    field_map = field_map or load_field_map()
    root = Path(exports_dir)
    prepare_raw(client)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    order = {e: i for i, e in enumerate(ENTITIES)}
    files.sort(key=lambda p: (order.get(entity_of(p) or "", len(order)), p.as_posix()))
    results: list[LoadResult] = []
    errors: list[FileError] = []
    regions: dict[str, str] | None = None
    for path in files:
        entity = entity_of(path)
        try:
            if entity == "customers" and regions is None:
                regions = business_regions(client)
            results.append(load_file(client, path, root=root, field_map=field_map, regions=regions))
        except (MappingError, pa.ArrowException, OSError, ValueError, KeyError) as exc:
            errors.append(FileError(str(path), f"{type(exc).__name__}: {exc}"))
    return results, errors
