"""CRM field map (YAML) → typed raw-table frames, with bad cells and rows quarantined.

One pipeline for API pages and file drops: `prepare(entity_map, source_frame, ...)`
renames CRM fields to raw columns, types them (values that cannot be parsed are
quarantined with the field, the value and the rule named, never guessed), normalises
phones with the business's country as region, runs the entity's quality suite, and
returns the rows to load in the raw table's columns.

A field map is a YAML file (the built-in one: field_map.yaml; a worked example for a
Russian-style export: field_maps/ru_salon.yaml; the format: ingestion/SOURCES.md). It
is validated on load against `FieldMapFile`: a wrong key or value is a FieldMapError
naming the file, the entity, the field and the key.
"""

from __future__ import annotations

import codecs
import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ingestion.identity import customer_id, normalize_phones
from ingestion.quality import QUARANTINE_COLUMNS, quarantine_rows, validate

DEFAULT_FIELD_MAP = Path(__file__).with_name("field_map.yaml")
EXAMPLE_FIELD_MAPS = Path(__file__).with_name("field_maps")
TYPES = ("string", "timestamp", "date", "decimal", "int", "bool", "phone")
ENTITIES = ("businesses", "locations", "services", "customers", "appointments")
DECIMAL = pa.decimal128(18, 2)
# A region no number belongs to: numbers of unknown businesses must carry their
# own country code, or they are reported unparseable (never parsed as some default).
UNKNOWN_REGION = "ZZ"
_DECIMAL_RE = r"^\s*[-+]?[0-9]{1,16}(?:\.[0-9]{0,2})?\s*$"
_TRUE = ("true", "1", "yes", "y", "t")
_FALSE = ("false", "0", "no", "n", "f", "")
# An ISO-8601 string that carries its own offset keeps it (the source time zone is only
# for naive local times).
_OFFSET_RE = r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)\s*$"
# Spaces a "1 500,00" may be written with: space, no-break space, narrow no-break space.
_SPACES = (" ", "\u00a0", "\u202f")


class MappingError(ValueError):
    """Source data does not fit the field map as a whole (e.g. a required field is absent)."""


class FieldMapError(MappingError):
    """A field-map file is invalid (names the file, entity, field and key)."""


# --- the field-map file, validated on load ----------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r} (e.g. Europe/Moscow)") from None
    return value


class FieldModel(_Strict):
    """One field: where it comes from (the YAML key names the CRM field) and how to type it."""

    column: str
    type: Literal["string", "timestamp", "date", "decimal", "int", "bool", "phone"] = "string"
    format: str | None = None
    formats: tuple[str, ...] = ()
    nullable: bool = False
    required: bool = False
    values: dict[str, str] | None = None
    true_values: tuple[str, ...] | None = None
    false_values: tuple[str, ...] | None = None
    decimal: Literal[".", ","] = "."
    thousands: Literal[" ", "\u00a0", ".", ",", "'", "_"] | None = None
    timezone: str | None = None
    constant: str | int | float | bool | None = None
    derive: Literal["from_folder", "from_phone"] | None = None
    phone_field: str | None = None

    _tz = field_validator("timezone")(_check_timezone)

    @model_validator(mode="after")
    def _consistent(self) -> FieldModel:
        t = self.type
        if self.values is not None and t != "string":
            raise ValueError("`values` (a value map) is for string fields")
        if (self.true_values or self.false_values) and t != "bool":
            raise ValueError("`true_values`/`false_values` are for bool fields")
        if (self.decimal != "." or self.thousands) and t != "decimal":
            raise ValueError("`decimal`/`thousands` are for decimal fields")
        if self.decimal == self.thousands:
            raise ValueError("`decimal` and `thousands` must differ")
        if (self.format or self.formats) and t not in ("timestamp", "date"):
            raise ValueError("`format`/`formats` are for timestamp and date fields")
        if self.timezone and t != "timestamp":
            raise ValueError("`timezone` is for timestamp fields")
        if self.constant is not None and self.derive:
            raise ValueError("a field is either `constant` or `derive`d, not both")
        if (self.constant is not None or self.derive) and self.required:
            raise ValueError(
                "a constant or derived field is not read from the source: drop `required`"
            )
        if self.derive == "from_phone" and not self.phone_field:
            raise ValueError(
                "`derive: from_phone` needs `phone_field` (the CRM field with the phone)"
            )
        if self.phone_field and self.derive != "from_phone":
            raise ValueError("`phone_field` goes with `derive: from_phone`")
        for fmt in (self.format, *self.formats):
            if fmt is not None and "%" not in fmt:
                raise ValueError(f"format {fmt!r} is not a strptime format (e.g. %d.%m.%Y)")
        return self


class EntityModel(_Strict):
    table: str | None = None
    suite: str | None = None
    files: tuple[str, ...] | None = None
    fields: dict[str, FieldModel]


class CsvModel(_Strict):
    encoding: str = "utf-8"
    delimiter: str = ","
    quotechar: str = '"'

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        if value != "auto":
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r} (e.g. utf-8, cp1251, auto)") from None
        return value

    @field_validator("delimiter", "quotechar")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if value != "auto" and len(value) != 1:
            raise ValueError(f"{value!r} must be one character (or auto for the delimiter)")
        return value


class FilesModel(_Strict):
    csv: CsvModel = CsvModel()


class ApiModel(_Strict):
    path: str = "/api/v1/{entity}"
    page_limit: int = Field(default=1000, gt=0)


class BusinessModel(_Strict):
    """The business's profile, for a business that only sends files: loaded as its
    raw.crm_businesses row (id from the export folder)."""

    name: str = ""
    kind: str = ""
    country: str = Field(pattern=r"^[A-Z]{2}$")
    city: str = ""
    timezone: str = "UTC"
    currency: str = ""

    _tz = field_validator("timezone")(_check_timezone)


class FieldMapFile(_Strict):
    name: str | None = None
    timezone: str | None = None
    business: BusinessModel | None = None
    api: ApiModel = ApiModel()
    files: FilesModel = FilesModel()
    entities: dict[Literal[ENTITIES], EntityModel]  # type: ignore[valid-type]

    _tz = field_validator("timezone")(_check_timezone)


# --- the loaded map ---------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    source: str
    column: str
    type: str
    format: str | None = None
    nullable: bool = False
    required: bool = False
    formats: tuple[str, ...] = ()
    values: Mapping[str, str] | None = None
    true_values: tuple[str, ...] | None = None
    false_values: tuple[str, ...] | None = None
    decimal: str = "."
    thousands: str | None = None
    timezone: str | None = None
    constant: Any = None
    derive: str | None = None
    phone_field: str | None = None

    @property
    def from_source(self) -> bool:
        """Read from the source (not a constant nor derived)."""
        return self.constant is None and self.derive is None

    @property
    def plain(self) -> bool:
        """Typed by the defaults alone (ISO dates in UTC, `.` decimals, …): the CSV reader
        may type it natively."""
        return (
            self.from_source
            and not self.formats
            and self.values is None
            and self.true_values is None
            and self.false_values is None
            and self.decimal == "."
            and self.thousands is None
            and self.timezone is None
        )

    def rule(self) -> str:
        """What this field accepts, in words (quarantine reasons carry it)."""
        if self.values is not None:
            return "expected one of " + ", ".join(repr(v) for v in self.values)
        if self.type == "bool":
            true, false = self.true_values or _TRUE, self.false_values or _FALSE
            return f"expected one of {', '.join(map(repr, (*true, *false)))}"
        if self.type in ("timestamp", "date"):
            formats = [*([self.format] if self.format else []), *self.formats, "ISO 8601"]
            where = f"; naive times are {self.timezone}" if self.timezone else ""
            return f"formats {', '.join(formats)}{where}"
        if self.type == "decimal":
            thousands = f", thousands separator {self.thousands!r}" if self.thousands else ""
            return f"decimal separator {self.decimal!r}{thousands}, at most 2 decimals"
        return f"a valid {self.type}"


# Default file-name patterns of an entity: `appointments.csv`, `appointments_202405.csv`, …
def default_patterns(entity: str) -> tuple[str, ...]:
    return (f"{entity}.*", f"{entity}_*", f"{entity}-*")


@dataclass(frozen=True)
class EntityMap:
    entity: str
    table: str
    suite: str
    fields: tuple[FieldSpec, ...]
    patterns: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        """Raw-table columns this entity produces, in field order."""
        out = []
        for f in self.fields:
            out.append(f.column)
            if f.type == "phone":
                out += ["phone_e164", "customer_id"]
        return out

    def matches(self, file_name: str) -> bool:
        name = file_name.casefold()
        patterns = self.patterns or default_patterns(self.entity)
        return any(fnmatch.fnmatchcase(name, p.casefold()) for p in patterns)


@dataclass(frozen=True)
class FieldMap:
    name: str
    entities: dict[str, EntityMap]
    api_path: str = "/api/v1/{entity}"
    page_limit: int = 1000
    csv_options: dict[str, Any] = field(default_factory=dict)
    business: Mapping[str, str] | None = None
    path: Path | None = None

    def entity(self, name: str) -> EntityMap:
        try:
            return self.entities[name]
        except KeyError:
            raise MappingError(f"field map {self.name!r} has no entity {name!r}") from None

    def entity_of(self, file_name: str) -> str | None:
        """The entity whose file-name patterns match (first in load order), or None."""
        for entity in ENTITIES:
            if entity in self.entities and self.entities[entity].matches(file_name):
                return entity
        return None

    def patterns(self) -> list[str]:
        """Every file-name pattern this map loads (for "skipped: matches none of …")."""
        return [p for e in self.entities.values() for p in e.patterns or default_patterns(e.entity)]


def _location(path: Path | str, loc: tuple[Any, ...]) -> str:
    """('entities', 'customers', 'fields', 'phone', 'tpye') → "entity customers, field
    'phone', key 'tpye'"."""
    parts, rest = [], list(loc)
    if rest[:1] == ["entities"] and len(rest) > 1:
        parts.append(f"entity {rest[1]}")
        rest = rest[2:]
        if rest[:1] == ["fields"] and len(rest) > 1:
            parts.append(f"field {rest[1]!r}")
            rest = rest[2:]
    rest = [str(r) for r in rest if not str(r).startswith(("function-", "literal["))]
    if rest:
        parts.append("key " + ".".join(rest))
    return ", ".join(parts) or "top level"


def parse_field_map(doc: Any, path: Path | str) -> FieldMap:
    """A field-map document (parsed YAML) → FieldMap; FieldMapError names what is wrong."""
    if not isinstance(doc, dict):
        raise FieldMapError(f"field map {path}: expected a mapping with `entities:`")
    try:
        model = FieldMapFile.model_validate(doc)
    except ValidationError as ex:
        problems = []
        for error in ex.errors():
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(f"{_location(path, error['loc'])}: {message}")
        raise FieldMapError(f"field map {path}: " + "; ".join(problems)) from None
    default_tz = model.timezone or (model.business.timezone if model.business else None)
    entities = {}
    for name, spec in model.entities.items():
        fields = []
        for source, f in spec.fields.items():
            timezone = f.timezone or (default_tz if f.type == "timestamp" else None)
            fields.append(
                FieldSpec(
                    source=str(source), column=f.column, type=f.type, format=f.format,
                    nullable=f.nullable, required=f.required, formats=f.formats,
                    values=f.values, true_values=f.true_values, false_values=f.false_values,
                    decimal=f.decimal, thousands=f.thousands,
                    timezone=None if timezone == "UTC" else timezone,
                    constant=f.constant, derive=f.derive, phone_field=f.phone_field,
                )
            )  # fmt: skip
        if name != "businesses" and not any(f.column == "business_id" for f in fields):
            raise FieldMapError(
                f"field map {path}: entity {name}: no field gives `business_id` "
                "(e.g. `business_id: {column: business_id, derive: from_folder}`)"
            )
        entities[name] = EntityMap(
            entity=name,
            table=spec.table or f"crm_{name}",
            suite=spec.suite or spec.table or f"crm_{name}",
            fields=tuple(fields),
            patterns=spec.files or (),
        )
    csv = model.files.csv.model_dump()
    return FieldMap(
        name=model.name or Path(path).stem,
        entities=entities,
        api_path=model.api.path,
        page_limit=model.api.page_limit,
        csv_options=csv,
        business=model.business.model_dump() if model.business else None,
        path=Path(path),
    )


def load_field_map(path: Path | str = DEFAULT_FIELD_MAP) -> FieldMap:
    """Read and validate a field-map YAML (see SOURCES.md for the format).

    Raises FieldMapError naming the file (and the entity, field and key) when the file is
    missing, is not YAML, or does not fit the schema."""
    path = Path(path)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as ex:
        raise FieldMapError(f"field map {path}: cannot read it: {ex.strerror}") from None
    return _load_field_map(path.resolve(), stamp)


@cache
def _load_field_map(path: Path, _stamp: int) -> FieldMap:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as ex:
        raise FieldMapError(f"field map {path}: not valid YAML: {ex}") from None
    return parse_field_map(doc, path)


@dataclass
class Prepared:
    """Rows to load (raw-table columns), quarantined rows, and the suite's checks."""

    frame: pd.DataFrame
    quarantine: pd.DataFrame
    checks: list[dict[str, Any]]


# --- typing of one column ---------------------------------------------------------------


def _present(col: pd.Series) -> np.ndarray:
    present = col.notna().to_numpy(dtype=bool, na_value=False)
    # Only Python objects (JSON, Excel) carry blank strings; CSV reads make them null.
    if col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
        blank = col.astype("str").str.strip().eq("").to_numpy(dtype=bool, na_value=False)
        present = present & ~blank
    return present


def _as_str(col: pd.Series) -> pd.Series:
    if pd.api.types.is_string_dtype(col.dtype) and col.dtype != object:
        return col
    out = col.astype("str")
    return out.where(col.notna().to_numpy(), None)


def _localize(parsed: pd.Series, timezone: str | None) -> pd.Series:
    """Naive times → UTC, read as local times of `timezone` (UTC when None). A local time
    that does not exist or is ambiguous (DST change) becomes NaT: quarantined, not guessed."""
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        return parsed.dt.tz_convert("UTC")
    if timezone is None:
        return parsed.dt.tz_localize("UTC")
    return parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")


def _parse_timestamps(col: pd.Series, present: np.ndarray, spec: FieldSpec) -> pd.Series:
    """Strings → UTC timestamps: ISO strings with an offset keep it; naive ones are tried
    with each format in turn (then ISO 8601) and read as local times of the field's zone."""
    text = _as_str(col).str.strip()
    out = pd.Series(pd.NaT, index=col.index, dtype="datetime64[ms, UTC]")
    todo = present.copy()
    offset = todo & text.str.contains(_OFFSET_RE).to_numpy(dtype=bool, na_value=False)
    if offset.any():
        parsed = pd.to_datetime(text[offset], utc=True, format="ISO8601", errors="coerce")
        out[offset] = parsed.dt.as_unit("ms")
        todo &= ~offset
    _fill_by_formats(
        out, text, todo, [*_declared_formats(spec), "ISO8601"],
        lambda parsed: _localize(parsed, spec.timezone).dt.as_unit("ms").to_numpy(),
    )  # fmt: skip
    return out


def _parse_dates(col: pd.Series, present: np.ndarray, spec: FieldSpec) -> pd.Series:
    text = _as_str(col).str.strip()
    out = pd.Series(pd.NaT, index=col.index, dtype="datetime64[ns]")
    todo = present.copy()
    _fill_by_formats(
        out, text, todo, [*_declared_formats(spec), "%Y-%m-%d"], lambda parsed: parsed.to_numpy()
    )
    return out


def _declared_formats(spec: FieldSpec) -> list[str]:
    return [*([spec.format] if spec.format else []), *spec.formats]


def _fill_by_formats(
    out: pd.Series,
    text: pd.Series,
    todo: np.ndarray,
    formats: list[str],
    convert: Callable[[pd.Series], np.ndarray],
) -> None:
    """Fill `out` where `todo` is set from the first format that parses each value (in
    order); `todo` is cleared for every value filled."""
    for fmt in formats:
        if not todo.any():
            break
        parsed = pd.to_datetime(text[todo], format=fmt, errors="coerce")
        ok = parsed.notna().to_numpy()
        if ok.any():
            idx = np.flatnonzero(todo)[ok]
            out.iloc[idx] = convert(parsed[ok])
            todo[idx] = False


def _normalise_decimal(text: pd.Series, spec: FieldSpec) -> pd.Series:
    """ "1 500,00" → "1500.00" per the field's separators (anything else stays invalid)."""
    out = text.str.strip()
    if spec.thousands:
        for sep in _SPACES if spec.thousands in _SPACES else (spec.thousands,):
            out = out.str.replace(sep, "", regex=False)
    if spec.decimal != ".":
        # A "." that is not the thousands separator is no number in this source.
        out = out.str.replace(".", "x", regex=False).str.replace(spec.decimal, ".", regex=False)
    return out


def _type_column(col: pd.Series, spec: FieldSpec) -> tuple[pd.Series, np.ndarray]:
    """(typed column, mask of present-but-unparseable cells)."""
    present = _present(col)
    kind = spec.type
    if kind in ("string", "phone"):
        typed = _as_str(col).where(present, None)
        if spec.values is None:
            return typed, np.zeros(len(col), dtype=bool)
        # Value map: exact first, then ignoring case and surrounding blanks.
        folded = {str(k).strip().casefold(): v for k, v in spec.values.items()}
        stripped = typed.str.strip()
        mapped = stripped.map(dict(spec.values))
        mapped = mapped.where(mapped.notna(), stripped.str.casefold().map(folded))
        bad = present & mapped.isna().to_numpy()
        return mapped.astype(object).where(~bad & present, None), bad
    if kind == "timestamp":
        if pd.api.types.is_datetime64_any_dtype(col.dtype):
            # Naive timestamps (Excel, Parquet) are local times of the field's zone.
            typed = _localize(col, spec.timezone)
        elif spec.plain and not spec.format:
            typed = pd.to_datetime(_as_str(col), utc=True, format="ISO8601", errors="coerce")
        elif spec.plain:
            typed = pd.to_datetime(_as_str(col), utc=True, format=spec.format, errors="coerce")
        else:
            typed = _parse_timestamps(col, present, spec)
        typed = typed.dt.as_unit("ms")
        return typed, present & typed.isna().to_numpy()
    if kind == "date":
        if pd.api.types.is_datetime64_any_dtype(col.dtype):
            parsed = col
        else:
            parsed = _parse_dates(col, present, spec)
        bad = present & parsed.isna().to_numpy()
        typed = pd.Series(
            np.where(parsed.isna().to_numpy(), None, parsed.dt.date.to_numpy(dtype=object)),
            index=col.index,
            dtype=object,
        )
        return typed, bad
    if kind == "decimal":
        if isinstance(col.dtype, pd.ArrowDtype) and pa.types.is_decimal(col.dtype.pyarrow_dtype):
            # Already exact decimals (CSV typed read, Parquet): rescale to (18, 2).
            return col.astype(pd.ArrowDtype(DECIMAL)), np.zeros(len(col), dtype=bool)
        text = _as_str(col)
        if not spec.plain:
            text = _normalise_decimal(text, spec)
        ok = text.str.contains(_DECIMAL_RE).to_numpy(dtype=bool, na_value=False) & present
        cleaned = text.str.strip().where(ok, None)
        typed_arr = pa.array(cleaned.to_numpy(dtype=object, na_value=None), type=pa.string()).cast(
            DECIMAL
        )
        return pd.Series(typed_arr, index=col.index, dtype=pd.ArrowDtype(DECIMAL)), present & ~ok
    if kind == "int":
        numbers = pd.to_numeric(col.where(present, None), errors="coerce")
        values = numbers.to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            integral = np.isfinite(values) & (np.floor(values) == values)
        typed = pd.Series(np.where(integral, values, np.nan), index=col.index).astype("Int64")
        return typed, present & ~integral
    if kind == "bool":
        if pd.api.types.is_bool_dtype(col.dtype):
            return col.astype("boolean"), np.zeros(len(col), dtype=bool)
        true = [v.casefold() for v in spec.true_values or _TRUE]
        false = [v.casefold() for v in spec.false_values or _FALSE]
        text = _as_str(col).str.strip().str.casefold()
        is_true = text.isin(true).to_numpy(dtype=bool, na_value=False)
        is_false = text.isin(false).to_numpy(dtype=bool, na_value=False)
        typed = pd.Series(
            pd.array(np.where(is_true, True, False), dtype="boolean"), index=col.index
        )
        typed[~(is_true | is_false)] = pd.NA
        return typed, present & ~(is_true | is_false)
    raise MappingError(f"unknown type {kind!r}")


def _fill_defaults(frame: pd.DataFrame, entity_map: EntityMap) -> pd.DataFrame:
    """Non-nullable columns get their type's empty value (after validation passed)."""
    out = frame.copy(deep=False)
    for spec in entity_map.fields:
        if spec.nullable:
            continue
        col = out[spec.column]
        if spec.type in ("string", "phone"):
            out[spec.column] = col.fillna("")
        elif spec.type == "int":
            out[spec.column] = col.fillna(0).astype("int64")
        elif spec.type == "bool":
            out[spec.column] = col.fillna(False).astype(bool)
        elif spec.type == "decimal":
            out[spec.column] = col.fillna(0)
        elif spec.type == "timestamp":
            # Only optional timestamps get here empty (required ones are checked by the
            # suite); the epoch marks "unknown" in a non-nullable column.
            out[spec.column] = col.fillna(pd.Timestamp(0, tz="UTC")).dt.as_unit("ms")
    return out


def _regions(
    typed: Mapping[str, pd.Series], n: int, regions: Mapping[str, str] | None
) -> pd.Series:
    business = typed.get("business_id", pd.Series([None] * n, dtype=object))
    return business.map(dict(regions or {})).astype(object).fillna(UNKNOWN_REGION).astype("str")


def _phone_reasons(
    source: str, errors: pd.Series, region: pd.Series, values: pd.Series, business: pd.Series
) -> pd.Series:
    """ "phone invalid number (region RU): '8 (941) 967-8'"; for a business of unknown
    country, say so and what fixes it, rather than a cryptic region code."""
    known = " (region " + region + ")"
    unknown = (
        " (no country known for business '" + business.fillna("").astype(str) + "': load its "
        "businesses row or set `business.country` in the field map, "
        "or numbers need +<country code>)"
    )
    where = np.where(region.eq(UNKNOWN_REGION).to_numpy(), unknown, known)
    return (
        f"{source} " + errors.fillna("").astype(str) + pd.Series(where, index=errors.index)
        + ": '" + values.fillna("").astype(str) + "'"
    )  # fmt: skip


def prepare(
    entity_map: EntityMap,
    source: pd.DataFrame,
    *,
    source_kind: str,
    row_ref: pd.Series,
    regions: Mapping[str, str] | None = None,
    business_id: str | None = None,
    id_key: bytes | None = None,
) -> Prepared:
    """Map, type, normalise phones and validate one batch of CRM records.

    `source`: the records with CRM field names (API JSON or a file's columns), any
    index; `row_ref`: aligned with `source`, how quarantine rows name each record.
    `regions`: business_id → ISO country, the default region of phone numbers.
    `business_id`: the business the batch belongs to (its export folder), for fields
    `derive: from_folder`. `id_key`: the installation's customer-id key
    (`ingestion.identity.customer_id`), needed by entities with a phone. Raises
    MappingError when a required field is missing from the source entirely.
    """
    missing = [
        f.source for f in entity_map.fields
        if f.required and f.from_source and f.source not in source
    ] + [
        f.phone_field for f in entity_map.fields
        if f.derive == "from_phone" and f.phone_field not in source
    ]  # fmt: skip
    if missing:
        raise MappingError(
            f"{entity_map.entity}: required field(s) {missing} missing "
            f"(have {sorted(map(str, source.columns))})"
        )
    n = len(source)
    source = source.reset_index(drop=True)
    row_ref = row_ref.reset_index(drop=True)
    typed: dict[str, pd.Series] = {}
    bad_cells: list[tuple[np.ndarray, str, pd.Series]] = []
    # Constants and the folder's business id first: phones need the business's region.
    for spec in entity_map.fields:
        if spec.constant is not None:
            typed[spec.column] = _type_column(pd.Series([spec.constant] * n, dtype=object), spec)[0]
        elif spec.derive == "from_folder":
            if business_id is None:
                raise MappingError(
                    f"{entity_map.entity}.{spec.source}: `derive: from_folder` needs the file "
                    "to sit in its business's folder (<exports>/<business_id>/...)"
                )
            typed[spec.column] = pd.Series([business_id] * n, dtype=object)
    for spec in entity_map.fields:
        if not spec.from_source:
            continue
        col = source[spec.source] if spec.source in source else pd.Series([None] * n, dtype=object)
        values, bad = _type_column(col, spec)
        typed[spec.column] = values
        if bad.any():
            shown = "'" + _as_str(col).fillna("") + "'"
            what = "unknown value " if spec.values is not None else "cannot parse "
            tail = "" if spec.values is not None else f" as {spec.type}"
            reasons = f"{spec.source}: {what}" + shown + f"{tail} ({spec.rule()})"
            bad_cells.append((bad, spec.column, reasons))
        if spec.type == "phone":
            region = _regions(typed, n, regions)
            phones = normalize_phones(values, region)
            typed["phone_e164"] = phones["phone_e164"]
            typed["customer_id"] = customer_id(phones["phone_e164"], id_key or b"")
            err = phones["error"].notna().to_numpy()
            if err.any():
                business = typed.get("business_id", pd.Series([None] * n, dtype=object))
                reasons = _phone_reasons(spec.source, phones["error"], region, values, business)
                bad_cells.append((err, "phone_e164", reasons))
    for spec in entity_map.fields:
        if spec.derive != "from_phone":
            continue
        # The customer id of a CRM that keys clients by phone: the same keyed hash of the
        # E.164 number in every file, so appointments find their customer (and no raw
        # phone hash is stored: `revisit migrate customer-ids` rewrites these too).
        raw = _as_str(source[spec.phone_field]).where(_present(source[spec.phone_field]), None)
        region = _regions(typed, n, regions)
        phones = normalize_phones(raw, region)
        typed[spec.column] = customer_id(phones["phone_e164"], id_key or b"")
        err = phones["error"].notna().to_numpy()
        if err.any():
            business = typed.get("business_id", pd.Series([None] * n, dtype=object))
            reasons = _phone_reasons(spec.phone_field or "", phones["error"], region, raw, business)
            bad_cells.append((err, spec.column, reasons))
    frame = pd.DataFrame(typed)

    # A bad value costs the row only where the row cannot do without it: a `required`
    # field, the phone the customer id comes from, or a column whose missing value would
    # read as a real one (a price of 0). Elsewhere (a nullable birthday, a name, a
    # consent flag, which then reads "no") the value is dropped and quarantined and the
    # row kept, so one impossible birthday never removes a customer and their visits.
    essential = {
        f.column
        for f in entity_map.fields
        if f.required
        or f.derive is not None
        or f.values is not None
        or not (f.nullable or f.type in ("string", "bool"))
    } | {"phone_e164"}
    quarantined = []
    rejected = np.zeros(len(frame), dtype=bool)
    for bad, column, reasons in bad_cells:
        if column not in essential:
            reasons = reasons + "; value dropped, row kept"
        quarantined.append(
            quarantine_rows(source_kind, row_ref[bad], column, reasons[bad], source[bad])
        )
        if column in essential:
            rejected |= bad
    if rejected.any():
        frame, row_ref = frame[~rejected], row_ref[~rejected]
    # (else no copy: a clean 1M-row batch would copy every column for nothing)
    optional = frozenset(entity_map.columns) - essential
    result = validate(
        frame, entity_map.suite, source=source_kind, row_ref=row_ref, optional=optional
    )
    # Rows with unparseable cells never reach the suite; count them in its checks so
    # the per-batch check results tell the whole story.
    checks = result.checks + [
        {
            "name": "parseable",
            "column": column,
            "success": False,
            "unexpected_count": int(bad.sum()),
            "reason": "value cannot be parsed",
        }
        for bad, column, _ in bad_cells
    ]
    quarantine = pd.concat([*quarantined, result.quarantine], ignore_index=True)
    quarantine = quarantine[list(QUARANTINE_COLUMNS)] if len(quarantine) else result.quarantine
    good = _fill_defaults(result.good, entity_map)
    return Prepared(good[entity_map.columns].reset_index(drop=True), quarantine, checks)
