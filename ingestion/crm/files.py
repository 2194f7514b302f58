"""CRM file drops: `crm/exports/<business_id>/` CSV, Excel and Parquet files.

Each file is one batch (id = entity + relative path + content hash), so reloading a file
is a no-op and a load killed half-way is cleaned up and redone by `load_batch`. The
entity comes from the file name (`customers.xlsx`, `appointments_202405.csv`,
`services.parquet`, …); fields go through the same field map as the API.

CSV reading: pyarrow.csv reads the file with the field map's types (timestamps,
decimals, ints parsed in C++). If any value does not convert, the file
is read again with every column as text and typed per cell, so only the bad rows are
quarantined. A file that cannot be read at all becomes a FileError naming the file and
the problem; the other files still load.

CSV typed and validated in the engine (`load_csv`, the default): the Arrow table the
reader made is handed to the engine as a relation (`warehouse.load.ArrowSource`), one
SQL expression decides which rows it accepts — every cell as the reader typed it (or,
for a text read, spelled in a canonical shape whose SQL typing equals `prepare`'s), and
every expectation of the entity's suite passed — and one `INSERT … SELECT … WHERE` that
expression loads those; only when the engine wrote fewer rows than the file has (or,
on a server, always) a second query finds the others. They (bad values, unusual
spellings, failed expectations) go through `prepare`, which therefore writes every
quarantine row and reason exactly as the reference path (`prepare_file`,
`csv_engine=False`) does. Entities the SQL cannot express (phones, value maps, formats,
time zones) go through `prepare` whole. On a 1M-row appointments file this takes about
0.9 CPU-s (hash 0.08, parse 0.27, accept and insert 0.5) instead of 1.3 for the reference
path (benchmarks/bench_file_ingestion.py). Of the insert, sorting the rows by the table's
key is the largest part (~0.17), reading the Arrow table ~0.09, the accept expression
~0.06. Files are hashed and parsed through a memory map of the file (no copy into read
buffers).

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

import codecs
import hashlib
import itertools
import sys
import time
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from clickhouse_connect.driver.binding import format_query_value
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from ingestion.crm.api import business_regions
from ingestion.crm.mapping import (
    DECIMAL,
    DEFAULT_FIELD_MAP,
    ENTITIES,
    EntityMap,
    FieldMap,
    MappingError,
    Prepared,
    load_field_map,
    prepare,
)
from ingestion.quality import get_suite
from warehouse.load import (
    ArrowSource,
    EngineRows,
    LoadResult,
    OpenBatch,
    done_batches,
    load_batch,
    merges_paused,
    open_batch,
    prepare_raw,
)
from warehouse.privacy import mask_text

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


def entity_of(path: Path, field_map: FieldMap | None = None) -> str | None:
    """`appointments_202405.csv` → "appointments" by the field map's file-name patterns
    (the built-in map: `<entity>.*`, `<entity>_*`, `<entity>-*`); None when none matches."""
    if path.suffix.lower() not in SUFFIXES:
        return None
    return (field_map or load_field_map()).entity_of(path.name)


def file_digest(path: Path) -> str:
    """SHA-256 of the file, hex (the content part of a file's batch id)."""
    # Hashed in place through a memory map: reading it into Python buffers first copies
    # the file once more (~10% of the hash's CPU on a 1M-row export). Same digest.
    with pa.memory_map(str(path)) as mapped:
        return hashlib.sha256(mapped.read_buffer()).hexdigest()


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    # Decimals stay arrow decimals (exact, vectorised); the rest use pandas defaults.
    def mapper(t: pa.DataType) -> Any:
        return pd.ArrowDtype(t) if pa.types.is_decimal(t) else None

    return table.to_pandas(types_mapper=mapper)


def detect_encoding(path: Path, encoding: str) -> str:
    """`auto`: a BOM says UTF-8 or UTF-16; otherwise the file must decode as UTF-8 (else
    a FileError with the hint to set the encoding). Other names are taken as given."""
    if encoding != "auto":
        return encoding
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8"  # the reader skips the BOM
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8"


def _sniff_delimiter(path: Path, encoding: str) -> str:
    """The most frequent of `,;\t|` in the header line."""
    with path.open("r", encoding=encoding, errors="replace", newline="") as handle:
        header = handle.readline()
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _explain_read_error(exc: Exception, path: Path, encoding: str, delimiter: str) -> str:
    """A reader's error, decoded, with what to change in the field map."""
    text = str(exc)
    if isinstance(exc, UnicodeDecodeError) or "UTF8" in text or "UTF-8" in text:
        sample = path.read_bytes()[:4096]
        guess = "cp1251"
        try:
            sample.decode("utf-8")
        except UnicodeDecodeError:
            try:
                sample.decode("cp1251")
            except UnicodeDecodeError:
                guess = "latin-1"
        return (
            f"could not decode as {encoding}: try `encoding: {guess}` in the field map "
            f"(files.csv.encoding) [{text.splitlines()[0][:160]}]"
        )
    if "Expected" in text and "columns" in text:
        return (
            f"rows have different numbers of columns with delimiter {delimiter!r}: "
            f"check `delimiter` and `quotechar` in the field map [{text.splitlines()[0][:160]}]"
        )
    return f"{type(exc).__name__}: {text}"


def _csv_options(
    path: Path, options: Mapping[str, Any]
) -> tuple[str, str, pacsv.ReadOptions, pacsv.ParseOptions]:
    encoding = detect_encoding(path, options.get("encoding", "utf-8"))
    delimiter = options.get("delimiter", ",")
    if delimiter == "auto":
        delimiter = _sniff_delimiter(path, encoding)
    # Single-threaded parse: files load `LOAD_WORKERS` at a time, which already keeps
    # the cores busy; pyarrow's own threads on top only add contention (~5-10%).
    read = pacsv.ReadOptions(encoding=encoding, block_size=1 << 24, use_threads=False)
    parse = pacsv.ParseOptions(delimiter=delimiter, quote_char=options.get("quotechar", '"'))
    return encoding, delimiter, read, parse


def _check_columns(names: list[str], delimiter: str) -> None:
    if len(names) == 1:
        header = names[0]
        other = next((d for d in (";", ",", "\t", "|") if d != delimiter and d in header), None)
        if other is not None:
            raise MappingError(
                f"one column found with delimiter {delimiter!r} (header {header[:80]!r}): "
                f"is the delimiter {other!r}? Set `delimiter: {other!r}` (or auto) in the field "
                "map (files.csv.delimiter)"
            )


def read_csv_arrow(path: Path, entity_map: EntityMap, options: Mapping[str, Any]) -> pa.Table:
    """CSV → Arrow table with the field map's types when every value converts, else text
    (empty cells null either way). `read_csv` is this table as a frame.

    Raises MappingError with a hint when the file does not decode in the configured
    encoding or has one column only (wrong delimiter)."""
    encoding, delimiter, read, parse = _csv_options(path, options)
    # Only fields typed by the defaults are typed by the reader; the others (value maps,
    # decimal commas, several date formats, local times) are read as text.
    typed = _reader_types(entity_map)
    convert = pacsv.ConvertOptions(
        column_types=typed,
        strings_can_be_null=True,
        null_values=[""],
        true_values=["true", "True", "TRUE", "1"],
        false_values=["false", "False", "FALSE", "0"],
        timestamp_parsers=[pacsv.ISO8601],
    )
    # The reader parses a memory map of the file: read() would copy it into the reader's
    # buffers first (~10% of the parse's CPU on a 1M-row export).
    try:
        try:
            with pa.memory_map(str(path)) as mapped:
                table = pacsv.read_csv(mapped, read, parse, convert)
        except pa.ArrowInvalid as exc:
            if "CSV conversion error" not in str(exc) and "In CSV column" not in str(exc):
                raise
            if "UTF8" in str(exc):
                raise
            text = pacsv.ConvertOptions(
                column_types={name: pa.string() for name in typed},
                strings_can_be_null=True,
                null_values=[""],
            )
            with pa.memory_map(str(path)) as mapped:
                table = pacsv.read_csv(mapped, read, parse, text)
        # Header names are decoded only here: a file in another encoding fails here too.
        names = table.column_names
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise MappingError(_explain_read_error(exc, path, encoding, delimiter)) from None
    _check_columns(names, delimiter)
    return table


def _reader_types(entity_map: EntityMap) -> dict[str, pa.DataType]:
    """Arrow types the CSV reader gives each source field (text for what `prepare` types)."""
    typed = {
        f.source: _ARROW_TYPES[f.type] if f.plain else pa.string()
        for f in entity_map.fields
        if f.from_source and (f.type != "timestamp" or not f.format)
    }
    for f in entity_map.fields:
        if f.derive == "from_phone" and f.phone_field:
            typed[f.phone_field] = pa.string()
    return typed


def read_csv(path: Path, entity_map: EntityMap, options: Mapping[str, Any]) -> pd.DataFrame:
    """CSV → frame with the field map's types when every value converts, else text.

    Raises MappingError with a hint when the file does not decode in the configured
    encoding or has one column only (wrong delimiter)."""
    return _to_pandas(read_csv_arrow(path, entity_map, options))


def read_file(
    path: Path,
    entity_map: EntityMap,
    field_map: FieldMap,
    form: Literal["frame", "arrow"] = "frame",
) -> Any:
    """An export file as a frame (`read_csv`, Excel, Parquet) or, for CSV, as the Arrow
    table `read_csv` makes its frame from (`form="arrow"`, `read_csv_arrow`)."""
    suffix = path.suffix.lower()
    if suffix == ".csv" and form == "arrow":
        return read_csv_arrow(path, entity_map, field_map.csv_options)
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


def business_of(path: Path, root: Path) -> str | None:
    """The business a file belongs to: its first folder under the exports root."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else None


def batch_id_of(path: Path, root: Path, entity: str, field_map: FieldMap) -> str:
    """The batch id of an export file: entity + relative path + content hash (+ field map)."""
    relative = path.relative_to(root).as_posix()
    # The field map is part of the batch: the same file read by another map is new data.
    map_tag = field_map.path.read_bytes() if field_map.path else field_map.name.encode()
    # The file is hashed once (SHA-256 of a 1M-row export costs about as much as parsing it).
    content = file_digest(path)
    if field_map.path is None or field_map.path == DEFAULT_FIELD_MAP.resolve():
        # Batch ids of the built-in map stay what they were (loads before field maps).
        return (
            f"crm-file-{entity}-"
            + hashlib.sha256(f"{relative}\0{content}".encode()).hexdigest()[:32]
        )
    digest = hashlib.sha256(f"{relative}\0{content}\0".encode() + map_tag)
    return f"crm-file-{entity}-" + digest.hexdigest()[:32]


def prepare_file(
    path: Path,
    *,
    root: Path,
    field_map: FieldMap,
    regions: Mapping[str, str] | None = None,
    entity: str | None = None,
    done: Collection[str] = (),
    id_key: bytes,
) -> PreparedFile:
    """Read one export file and prepare its batch, unless its batch id is in `done`.

    No warehouse access, so it can run in a worker thread. Raises on an unreadable file.
    """
    entity = entity or entity_of(path, field_map)
    if entity is None:
        raise MappingError(
            f"file name matches none of the field map's patterns {field_map.patterns()}"
        )
    entity_map = field_map.entity(entity)
    relative = path.relative_to(root).as_posix()
    batch_id = batch_id_of(path, root, entity, field_map)
    if batch_id in done:
        return PreparedFile(entity_map.table, batch_id, relative, None)
    frame = read_file(path, entity_map, field_map)
    # Line numbers of the rows in the file (header is line 1).
    row_ref = pd.Series(np.arange(2, len(frame) + 2, dtype=np.int64))
    prepared = prepare(
        entity_map, frame, source_kind="crm_file", row_ref=row_ref, regions=regions,
        business_id=business_of(path, root), id_key=id_key,
    )  # fmt: skip
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
    id_key: bytes,
) -> LoadResult:
    """Load one export file as one batch (not read when its batch id is in `done`); CSV
    through the engine (`load_csv`). Raises on an unreadable file."""
    if path.suffix.lower() == ".csv":
        return load_csv(
            client, path, root=root, field_map=field_map, regions=regions, entity=entity,
            done=done, id_key=id_key,
        )[0]  # fmt: skip
    prepared = prepare_file(
        path, root=root, field_map=field_map, regions=regions, entity=entity, done=done,
        id_key=id_key,
    )  # fmt: skip
    return load_prepared(client, prepared)


# --- CSV typed and validated in the engine --------------------------------------------
#
# The engine decides the rows it can: every cell missing or spelled in a canonical shape
# whose typing in SQL equals the reference typing (`mapping.prepare`, per cell), and
# every suite expectation passed. Like the phone fast path (ingestion/identity.py) it
# only ever *accepts*: any other row (a bad value, an unusual spelling, a failed
# expectation) is read back and goes through `prepare`, which therefore writes every
# quarantine row and reason exactly as before. A clean file is validated by one query
# and inserted by one INSERT … SELECT over the reader's Arrow table (no pandas per cell).

_TS_SHAPE = (
    r"^(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]"
    r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?Z?$"
)
_DATE_SHAPE = r"^(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
_DECIMAL_SHAPE = r"^-?[0-9]{1,16}(\.[0-9]{1,2})?$"
_INT_SHAPE = r"^-?[0-9]{1,15}$"  # float64 (pd.to_numeric) is exact up to 15 digits
_BOOL_TRUE = ("true", "1", "yes", "y", "t")  # mapping's defaults, ASCII: lower() = casefold()
_BOOL_FALSE = ("false", "0", "no", "n", "f")
# Regex syntax whose meaning differs between Python's `re` (the suite's engine) and RE2
# (the engine's `match`) in the direction that matters (RE2 passing where re fails):
# Unicode vs ASCII word boundaries and negated classes, inline flags and groups.
_REGEX_UNSAFE = ("\\b", "\\B", "\\D", "\\W", "\\S", "(?")
_SQL_ZERO = {
    "string": "''",
    "int": "toInt64(0)",
    "bool": "false",
    "decimal": "toDecimal64(0, 2)",
    "timestamp": "toDateTime64(0, 3, 'UTC')",
}


@cache
def _blank_re() -> str:
    """RE2 for a cell of whitespace only, as `str.strip()` sees whitespace (Unicode)."""
    spaces = (chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
    return "^[" + "".join(f"\\x{{{ord(c):x}}}" for c in spaces) + "]*$"


def _lit(value: Any) -> str:
    return format_query_value(value)


@dataclass(frozen=True)
class _Cell:
    """One raw column in SQL: typed value (NULL when missing), present, accepted."""

    value: str
    present: str
    accepted: str
    type: str
    nullable: bool


def _nonblank(c: str) -> str:
    # Cheap first: a cell starting with printable ASCII other than space is not blank.
    return f"(reinterpretAsUInt8({c}) BETWEEN 33 AND 126 OR NOT match({c}, {_lit(_blank_re())}))"


def _typed_cell(spec: Any, c: str) -> _Cell:
    """A field the reader typed (`read_csv_arrow` succeeded): the value as read. A cell of
    spaces (which `prepare` reads as missing) sends its row to `prepare`."""
    present = f"({c} IS NOT NULL)"
    if spec.type == "string":
        accepted = f"({c} IS NULL OR {_nonblank(c)})"
        return _Cell(c, present, accepted, "string", spec.nullable)
    return _Cell(c, present, "1", spec.type, spec.nullable)


def _text_cell(spec: Any, c: str) -> _Cell | None:
    """A field read as text (some value of the file did not convert; empty cells are "")."""
    present = f"({c} != '' AND {_nonblank(c)})"
    if spec.type == "string":
        return _Cell(f"if({present}, {c}, NULL)", present, "1", "string", spec.nullable)
    if spec.type == "timestamp":
        parsed = f"parseDateTime64BestEffortOrNull({c}, 3, 'UTC')"
        ok = f"(NOT {present} OR (match({c}, {_lit(_TS_SHAPE)}) AND isNotNull({parsed})))"
        return _Cell(f"if({present}, {parsed}, NULL)", present, ok, "timestamp", spec.nullable)
    if spec.type == "decimal":
        ok = f"(NOT {present} OR match({c}, {_lit(_DECIMAL_SHAPE)}))"
        value = f"if({present}, toDecimal64OrNull({c}, 2), NULL)"
        return _Cell(value, present, ok, "decimal", spec.nullable)
    if spec.type == "int":
        ok = f"(NOT {present} OR match({c}, {_lit(_INT_SHAPE)}))"
        return _Cell(f"if({present}, toInt64OrNull({c}), NULL)", present, ok, "int", spec.nullable)
    if spec.type == "bool":
        true, false = _lit(list(_BOOL_TRUE)), _lit(list(_BOOL_FALSE))
        # An empty cell is missing (NA); a cell of spaces reads "false" in `prepare`: slow.
        ok = f"({c} = '' OR has({true}, lower({c})) OR has({false}, lower({c})))"
        value = (
            f"multiIf({c} = '', NULL, has({true}, lower({c})), true, "
            f"has({false}, lower({c})), false, NULL)"
        )
        return _Cell(value, f"({c} != '')", ok, "bool", spec.nullable)
    return None


def _engine_fails(exp: Any, cell: _Cell) -> str | None:
    """SQL true where a row fails expectation `exp` (GX semantics: missing values pass all
    but not_null); None when the engine cannot decide it exactly."""
    if exp.expect == "not_null":
        return f"NOT {cell.present}"
    if exp.expect == "in_set" and cell.type == "string":
        if not all(isinstance(v, str) for v in exp.values or ()):
            return None
        return f"({cell.present} AND NOT has({_lit(list(exp.values or ()))}, {cell.value}))"
    if exp.expect == "match_regex" and cell.type == "string":
        if any(token in (exp.regex or "") for token in _REGEX_UNSAFE):
            return None
        return f"({cell.present} AND NOT match({cell.value}, {_lit(exp.regex)}))"
    if exp.expect == "between" and cell.type in ("decimal", "int"):
        # As the suite compares: the value as float64 against inclusive bounds.
        number = f"toFloat64({cell.value})"
        bounds = [f"{number} >= {float(exp.min)!r}"] if exp.min is not None else []
        bounds += [f"{number} <= {float(exp.max)!r}"] if exp.max is not None else []
        return f"({cell.present} AND NOT ({' AND '.join(bounds)}))"
    return None


@dataclass(frozen=True)
class _EnginePlan:
    accepted: str  # SQL: the engine types and validates this row (else `prepare` does)
    columns: tuple[str, ...]  # raw-table columns
    values: tuple[str, ...]  # SQL of each, missing values filled as `prepare` fills them


def _engine_plan(
    entity_map: EntityMap, names: list[str], business_id: str | None, *, typed: bool
) -> _EnginePlan | None:
    """The SQL for an entity read into columns `c<i>` (header `names`), typed by the reader
    or (`typed=False`) text, or None when some field or expectation is beyond the engine
    (then `prepare` reads every row)."""
    position = {name: i for i, name in enumerate(names)}
    if len(position) != len(names):
        return None  # repeated header names: leave them to the reference path
    cells: dict[str, _Cell] = {}
    for spec in entity_map.fields:
        if spec.type == "phone" or spec.derive == "from_phone":
            return None
        if spec.derive == "from_folder":
            if business_id is None:
                return None
            cells[spec.column] = _Cell(_lit(business_id), "1", "1", "string", spec.nullable)
        elif spec.constant is not None:
            text = str(spec.constant)
            if spec.type != "string" or spec.values is not None or not text.strip():
                return None
            cells[spec.column] = _Cell(_lit(text), "1", "1", "string", spec.nullable)
        elif not spec.plain:
            return None
        elif spec.source not in position:  # every row misses it, as `prepare` reads it
            cells[spec.column] = _Cell("NULL", "0", "1", spec.type, spec.nullable)
        elif spec.type not in _SQL_ZERO or spec.format:
            return None  # dates (customers) and strptime formats are left to `prepare`
        else:
            column = f"c{position[spec.source]}"
            cell = _typed_cell(spec, column) if typed else _text_cell(spec, column)
            if cell is None:
                return None
            cells[spec.column] = cell
    accepted = [cell.accepted for cell in cells.values() if cell.accepted != "1"]
    for exp in get_suite(entity_map.suite):
        if exp.column not in cells:
            return None
        fails = _engine_fails(exp, cells[exp.column])
        if fails is None:
            return None
        accepted.append(f"NOT {fails}")
    values = []
    for column in entity_map.columns:
        cell = cells[column]
        # `prepare` fills non-nullable columns of these types (dates stay missing).
        filled = not cell.nullable and cell.type in _SQL_ZERO
        values.append(f"ifNull({cell.value}, {_SQL_ZERO[cell.type]})" if filled else cell.value)
    return _EnginePlan(" AND ".join(accepted) or "1", tuple(entity_map.columns), tuple(values))


def _missing_required(entity_map: EntityMap, names: Collection[str]) -> None:
    """The MappingError `prepare` raises for a required field absent from the file."""
    missing = [
        f.source for f in entity_map.fields
        if f.required and f.from_source and f.source not in names
    ]  # fmt: skip
    if missing:
        raise MappingError(
            f"{entity_map.entity}: required field(s) {missing} missing "
            f"(have {sorted(map(str, names))})"
        )


def _engine_rows(table: pa.Table, *, typed: bool) -> pa.Table:
    """The reader's table as the engine reads it: columns `c<i>` plus `_pos` (the row's
    position); text cells "" where empty."""
    columns = [col if typed else pc.fill_null(col, "") for col in table.columns]
    # Columns without nulls are declared so: the engine reads them as plain (not Nullable)
    # columns, on which filling missing values costs nothing.
    fields = [
        pa.field(f"c{i}", col.type, nullable=col.null_count > 0) for i, col in enumerate(columns)
    ]
    fields.append(pa.field("_pos", pa.uint64(), nullable=False))
    columns.append(pa.array(np.arange(table.num_rows, dtype=np.uint64)))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _kept_rows(quarantine: pd.DataFrame, row_ref: pd.Series) -> np.ndarray:
    """Which of `row_ref`'s rows `prepare` kept: a row is rejected when one of its
    quarantine reasons is not a dropped value ("…; value dropped, row kept")."""
    if quarantine.empty:
        return np.ones(len(row_ref), dtype=bool)
    whole = quarantine.loc[~quarantine["reason"].str.endswith("value dropped, row kept"), "row_ref"]
    return ~row_ref.astype(str).isin(set(whole)).to_numpy()


def load_csv(
    client: Client,
    path: Path,
    *,
    root: Path,
    field_map: FieldMap,
    regions: Mapping[str, str] | None = None,
    entity: str | None = None,
    done: Collection[str] = (),
    id_key: bytes,
) -> tuple[LoadResult, pd.DataFrame]:
    """Load one CSV export as one batch, typing and validating it in the engine.

    Same batch, rows and quarantine as `load_file` (the rows the engine does not accept
    go through `prepare`); returns the load result and the quarantined rows. `_row` is
    the row's position in the file, `_version` the load time plus it. Raises on an
    unreadable file."""
    entity = entity or entity_of(path, field_map)
    if entity is None:
        raise MappingError(
            f"file name matches none of the field map's patterns {field_map.patterns()}"
        )
    entity_map = field_map.entity(entity)
    relative = path.relative_to(root).as_posix()
    batch_id = batch_id_of(path, root, entity, field_map)
    if batch_id in done:
        return LoadResult(entity_map.table, batch_id, 0, 0, skipped=True), pd.DataFrame()
    table = read_file(path, entity_map, field_map, "arrow")
    names = table.column_names
    _missing_required(entity_map, names)
    business_id = business_of(path, root)
    # The reader typed the file unless some value did not convert (then it is all text).
    typed = all(
        table.schema.field(name).type == kind
        for name, kind in _reader_types(entity_map).items()
        if names.count(name) == 1
    )
    plan = _engine_plan(entity_map, names, business_id, typed=typed)
    n = table.num_rows
    version = np.uint64(time.time_ns())
    with ExitStack() as stack:
        # Exports are large and raw tables are read with FINAL (see load_prepared).
        batch = open_batch(
            client, entity_map.table, batch_id=batch_id, source=relative, collapse_on_insert=False
        )
        if batch is None:  # done meanwhile, by another loader
            return LoadResult(entity_map.table, batch_id, 0, 0, skipped=True), pd.DataFrame()
        # Entered first, left last: a failure below removes the rows already inserted.
        stack.enter_context(batch)
        slow = None
        if plan is not None:
            source = stack.enter_context(ArrowSource(client, _engine_rows(table, typed=typed)))
            slow = _insert_accepted(batch, source, plan, n, version, relative)
        if slow is None:
            slow = np.arange(n, dtype=np.uint64)
        quarantine = pd.DataFrame()
        if len(slow):
            # Line numbers of the rows in the file (header is line 1).
            row_ref = pd.Series(slow.astype(np.int64) + 2)
            prepared = prepare(
                entity_map, _to_pandas(table if len(slow) == n else table.take(pa.array(slow))),
                source_kind="crm_file",
                row_ref=row_ref, regions=regions, business_id=business_id, id_key=id_key,
            )  # fmt: skip
            kept = slow[_kept_rows(prepared.quarantine, row_ref)]
            if len(kept) != len(prepared.frame):
                raise RuntimeError(f"{relative}: kept rows do not line up with prepare's rows")
            batch.insert(prepared.frame.assign(_row=kept, _version=version + kept))
            quarantine = prepared.quarantine
        result = batch.finish(quarantine)
    return result, quarantine


def _insert_accepted(
    batch: OpenBatch,
    source: ArrowSource,
    plan: _EnginePlan,
    n: int,
    version: np.uint64,
    relative: str,
) -> np.ndarray | None:
    """Insert the rows the engine accepts (of `n`, in `source`); return the positions of
    the others (sorted), or None when the engine cannot run the plan (then `prepare`
    reads every row).

    One pass: the INSERT filters on the plan, and when the engine reports having written
    all `n` rows (a clean file, embedded) no second query looks for the others. Raw
    tables have no materialized views, so the rows written are this table's rows.
    """
    bookkeeping = (_lit(batch.batch_id), _lit(relative), "_pos", f"{int(version)} + _pos")
    select = (
        f"SELECT {', '.join((*plan.values, *bookkeeping))} FROM {source.relation} "
        f"WHERE {plan.accepted}"
    )
    columns = (*plan.columns, "_batch_id", "_source", "_row", "_version")
    try:
        written = batch.insert(EngineRows(source, columns, select))
    except DatabaseError:
        # A suite regex RE2 refuses, say: nothing (or, past the first block, a part of
        # the file) went in; start the batch afresh and let `prepare` read every row.
        batch.restart()
        return None
    if written == n:
        return np.empty(0, dtype=np.uint64)
    slow = (
        source.query_arrow(f"SELECT _pos FROM {source.relation} WHERE NOT ({plan.accepted})")
        .column(0)
        .to_numpy()
        .astype(np.uint64)
    )
    slow.sort()
    if written is None:  # a server does not report the rows an insert wrote
        batch.rows += n - len(slow)
    elif written != n - len(slow):
        raise RuntimeError(
            f"{relative}: the engine inserted {written} rows, but rejects {len(slow)} of {n}"
        )
    return slow


# --- a whole exports directory, with a report per file ------------------------------------

FileStatus = Literal["loaded", "already loaded", "skipped", "failed"]


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file under the exports directory."""

    path: str  # relative to the exports root
    status: FileStatus
    entity: str | None = None
    field_map: str = ""
    rows_loaded: int = 0
    rows_quarantined: int = 0
    top_reasons: tuple[tuple[str, int], ...] = ()  # (field: reason with value and rule, count)
    message: str = ""  # why skipped or failed


@dataclass
class ExportsReport:
    """Every file under the exports root: loaded, already loaded, skipped or failed."""

    files: list[FileOutcome]
    results: list[LoadResult]

    @property
    def errors(self) -> list[FileError]:
        return [FileError(f.path, f.message) for f in self.files if f.status == "failed"]

    @property
    def ok(self) -> bool:
        """Nothing failed and nothing was skipped."""
        return all(f.status in ("loaded", "already loaded") for f in self.files)


def _top_reasons(quarantine: pd.DataFrame, n: int = 3) -> tuple[tuple[str, int], ...]:
    if quarantine.empty:
        return ()
    counts = (
        quarantine["field"].astype(str) + ": " + quarantine["reason"].astype(str)
    ).value_counts()
    # Shown in reports and logs: the quarantined values' phones are masked (the quarantine
    # table keeps them whole, for fixing the source).
    return tuple((mask_text(str(k)), int(v)) for k, v in counts.head(n).items())


def _load_one(
    client: Client,
    item: tuple[Path, FieldMap],
    *,
    root: Path,
    entity: str,
    regions: Mapping[str, str] | None,
    done: Collection[str],
    id_key: bytes,
    csv_engine: bool = True,
) -> tuple[FileOutcome, LoadResult | None]:
    path, field_map = item
    relative = path.relative_to(root).as_posix()
    try:
        if csv_engine and path.suffix.lower() == ".csv":
            result, quarantine = load_csv(
                client, path, root=root, field_map=field_map, regions=regions, entity=entity,
                done=done, id_key=id_key,
            )  # fmt: skip
        else:
            prepared = prepare_file(
                path, root=root, field_map=field_map, regions=regions, entity=entity, done=done,
                id_key=id_key,
            )  # fmt: skip
            result = load_prepared(client, prepared)
            quarantine = prepared.prepared.quarantine if prepared.prepared else pd.DataFrame()
    except _FILE_ERRORS as exc:
        message = str(exc) if isinstance(exc, MappingError) else f"{type(exc).__name__}: {exc}"
        return FileOutcome(relative, "failed", entity, field_map.name, message=message), None
    if result.skipped:
        return FileOutcome(relative, "already loaded", entity, field_map.name), result
    reasons = _top_reasons(quarantine)
    outcome = FileOutcome(
        relative, "loaded", entity, field_map.name, result.rows_loaded, result.rows_quarantined,
        reasons,
    )  # fmt: skip
    return outcome, result


class FieldMaps:
    """Which field map reads each business's folder, first found wins:

    1. `forced` (the CLI's `--field-map`), for every folder;
    2. `<maps_dir>/<business_id>.yaml` (`<data dir>/field_maps/`);
    3. `field_map.yaml` inside the business's export folder;
    4. `default` (`REVISIT_CRM_FIELD_MAP`), else the built-in map.

    An invalid map is a FieldMapError (every file of that folder fails with it)."""

    FILE_NAME = "field_map.yaml"

    def __init__(
        self,
        *,
        forced: FieldMap | None = None,
        maps_dir: Path | None = None,
        default: FieldMap | None = None,
    ) -> None:
        self.forced, self.maps_dir = forced, maps_dir
        self.default = default or load_field_map()

    def for_folder(self, folder: Path | None) -> FieldMap:
        if self.forced is not None:
            return self.forced
        if folder is not None:
            if self.maps_dir is not None and (self.maps_dir / f"{folder.name}.yaml").is_file():
                return load_field_map(self.maps_dir / f"{folder.name}.yaml")
            if (folder / self.FILE_NAME).is_file():
                return load_field_map(folder / self.FILE_NAME)
        return self.default


def _business_row(business_id: str, field_map: FieldMap) -> pd.DataFrame:
    profile = dict(field_map.business or {})
    assert field_map.path is not None
    # The map's edit time: a changed profile is a new version (reloads of the same
    # map are one batch, loaded once).
    stamp = pd.Timestamp(field_map.path.stat().st_mtime_ns, unit="ns", tz="UTC").floor("s")
    return pd.DataFrame(
        [{"id": business_id, **profile, "updated_at": stamp.isoformat()}], dtype=object
    )


def _load_profiles(
    client: Client, profiles: Mapping[str, FieldMap], root: Path
) -> list[LoadResult]:
    """Load the `business:` profile of each field map as its folder's businesses row."""
    results = []
    builtin = load_field_map().entity("businesses")
    for business_id, field_map in sorted(profiles.items()):
        frame = _business_row(business_id, field_map)
        prepared = prepare(
            builtin, frame, source_kind="crm_field_map",
            row_ref=pd.Series([f"{field_map.path}#business"]),
        )  # fmt: skip
        digest = hashlib.sha256(frame.to_json().encode()).hexdigest()[:32]
        results.append(
            load_batch(
                client, builtin.table, prepared.frame, batch_id=f"crm-profile-{digest}",
                source=f"{business_id}/field map {field_map.name}",
                quarantine=prepared.quarantine,
            )
        )  # fmt: skip
    return results


def ingest_crm_exports(
    client: Client,
    exports_dir: Path | str,
    *,
    field_maps: FieldMaps | None = None,
    businesses: Collection[str] | None = None,
    id_key: bytes,
    csv_engine: bool = True,
) -> ExportsReport:
    """Load every export under `exports_dir` (`<business_id>/<files>`) and report each file.

    Each business folder is read with its field map (`FieldMaps`); a file whose name
    matches none of its patterns (or is no CSV, Excel or Parquet file) is skipped and
    reported with the patterns; a file that cannot be read fails alone, with the
    reason and a hint. Businesses and locations load before customers (whose phone
    region is the business's country, from raw.crm_businesses or the map's `business:`
    profile, which is loaded as the folder's businesses row).

    Within one entity, `LOAD_WORKERS` threads each read, validate and insert one file
    (pyarrow's reader and the engine release the GIL), so one file's parsing overlaps
    another's insert; at most `LOAD_WORKERS` prepared files are held in memory.
    Files whose batch is already done are hashed but not read. Merges of the entity's
    table are paused until its last file is in (`merges_paused`). `businesses`: only
    these business folders (default: every file under the root). `id_key`: the
    installation's customer-id key. `csv_engine`: CSV files are typed and validated in
    the engine (`load_csv`); False reads them with `prepare_file` (the reference path).
    """
    field_maps = field_maps or FieldMaps()
    root = Path(exports_dir)
    prepare_raw(client)
    outcomes: list[FileOutcome] = []
    planned: list[tuple[str, Path, FieldMap]] = []
    profiles: dict[str, FieldMap] = {}
    maps: dict[Path | None, FieldMap | Exception] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        if path.name.startswith(".") or path.name == FieldMaps.FILE_NAME:
            continue
        business = business_of(path, root)
        if businesses is not None and business not in businesses:
            continue
        folder = root / business if business else None
        if folder not in maps:
            try:
                maps[folder] = field_maps.for_folder(folder)
            except MappingError as exc:
                maps[folder] = exc
        field_map = maps[folder]
        if isinstance(field_map, Exception):
            outcomes.append(FileOutcome(relative.as_posix(), "failed", message=str(field_map)))
            continue
        if path.suffix.lower() not in SUFFIXES:
            outcomes.append(
                FileOutcome(
                    relative.as_posix(), "skipped", field_map=field_map.name,
                    message=f"not a {'/'.join(SUFFIXES)} file",
                )
            )  # fmt: skip
            continue
        entity = field_map.entity_of(path.name)
        if entity is None:
            outcomes.append(
                FileOutcome(
                    relative.as_posix(), "skipped", field_map=field_map.name,
                    message=f"name matches none of the patterns of field map "
                    f"{field_map.name!r}: {', '.join(field_map.patterns())}",
                )
            )  # fmt: skip
            continue
        if business and field_map.business:
            profiles[business] = field_map
        planned.append((entity, path, field_map))
    results = _load_profiles(client, profiles, root) if profiles else []
    order = {e: i for i, e in enumerate(ENTITIES)}
    planned.sort(key=lambda t: (order[t[0]], t[1].as_posix()))
    with ThreadPoolExecutor(max_workers=LOAD_WORKERS, thread_name_prefix="crm-file") as pool:
        for entity, group in itertools.groupby(planned, key=lambda t: t[0]):
            items = [(path, fmap) for _, path, fmap in group]
            regions = None
            if entity in ("customers", "appointments"):
                # Customers' phone regions need every business loaded: a barrier per entity.
                regions = business_regions(client)
                regions.update(
                    {b: str(m.business["country"]) for b, m in profiles.items() if m.business}
                )
            tables = sorted({fmap.entity(entity).table for _, fmap in items})
            done = set().union(*(done_batches(client, t) for t in tables))
            # One part per file: merge them once, after the entity's last file.
            with ExitStack() as stack:
                for table in tables:
                    stack.enter_context(merges_paused(client, table))
                load = partial(
                    _load_one, client, root=root, entity=entity, regions=regions, done=done,
                    id_key=id_key, csv_engine=csv_engine,
                )  # fmt: skip
                for outcome, result in pool.map(load, items):
                    outcomes.append(outcome)
                    if result is not None:
                        results.append(result)
    outcomes.sort(key=lambda o: o.path)
    return ExportsReport(outcomes, results)


def load_crm_exports(
    client: Client,
    exports_dir: Path | str,
    *,
    field_map: FieldMap | None = None,
    field_maps: FieldMaps | None = None,
    id_key: bytes,
    csv_engine: bool = True,
) -> tuple[list[LoadResult], list[FileError]]:
    """Load every export under `exports_dir`; returns the load results and the files that
    failed as a whole (each error names the file and the problem). `field_map` reads every
    folder (else `field_maps` chooses per folder). See `ingest_crm_exports`."""
    chooser = field_maps or FieldMaps(forced=field_map)
    report = ingest_crm_exports(
        client, exports_dir, field_maps=chooser, id_key=id_key, csv_engine=csv_engine
    )
    root = Path(exports_dir)
    errors = [FileError(str(root / e.path), e.error) for e in report.errors]
    return report.results, errors
