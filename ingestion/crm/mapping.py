"""CRM field map (YAML) → typed raw-table frames, with bad cells and rows quarantined.

One pipeline for API pages and file drops: `prepare(entity_map, source_frame, ...)`
renames CRM fields to raw columns, types them (values that cannot be parsed are
quarantined with the field and value named, never guessed), normalises phones with
the business's country as region, runs the entity's quality suite, and returns the
rows to load in the raw table's columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from ingestion.identity import customer_id, normalize_phones
from ingestion.quality import QUARANTINE_COLUMNS, quarantine_rows, validate

DEFAULT_FIELD_MAP = Path(__file__).with_name("field_map.yaml")
TYPES = ("string", "timestamp", "date", "decimal", "int", "bool", "phone")
ENTITIES = ("businesses", "locations", "services", "customers", "appointments")
DECIMAL = pa.decimal128(18, 2)
# A region no number belongs to: numbers of unknown businesses must carry their
# own country code, or they are reported unparseable (never parsed as some default).
UNKNOWN_REGION = "ZZ"
_DECIMAL_RE = r"^\s*[-+]?[0-9]{1,16}(?:\.[0-9]{0,2})?\s*$"
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


class MappingError(ValueError):
    """Source data does not fit the field map as a whole (e.g. a required field is absent)."""


@dataclass(frozen=True)
class FieldSpec:
    source: str
    column: str
    type: str
    format: str | None = None
    nullable: bool = False
    required: bool = False


@dataclass(frozen=True)
class EntityMap:
    entity: str
    table: str
    suite: str
    fields: tuple[FieldSpec, ...]

    @property
    def columns(self) -> list[str]:
        """Raw-table columns this entity produces, in field order."""
        out = []
        for f in self.fields:
            out.append(f.column)
            if f.type == "phone":
                out += ["phone_e164", "customer_id"]
        return out


@dataclass(frozen=True)
class FieldMap:
    name: str
    entities: dict[str, EntityMap]
    api_path: str = "/api/v1/{entity}"
    page_limit: int = 1000
    csv_options: dict[str, Any] = field(default_factory=dict)

    def entity(self, name: str) -> EntityMap:
        try:
            return self.entities[name]
        except KeyError:
            raise MappingError(f"field map {self.name!r} has no entity {name!r}") from None


@cache
def load_field_map(path: Path | str = DEFAULT_FIELD_MAP) -> FieldMap:
    """Parse a field-map YAML (see field_map.yaml for the format)."""
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    entities = {}
    for name, spec in doc["entities"].items():
        fields = []
        for source, f in spec["fields"].items():
            if f.get("type", "string") not in TYPES:
                raise MappingError(f"{path}: {name}.{source}: type must be one of {TYPES}")
            fields.append(
                FieldSpec(
                    source=source,
                    column=f["column"],
                    type=f.get("type", "string"),
                    format=f.get("format"),
                    nullable=bool(f.get("nullable", False)),
                    required=bool(f.get("required", False)),
                )
            )
        entities[name] = EntityMap(
            name, spec["table"], spec.get("suite", spec["table"]), tuple(fields)
        )
    api = doc.get("api", {})
    return FieldMap(
        name=doc.get("name", Path(path).stem),
        entities=entities,
        api_path=api.get("path", "/api/v1/{entity}"),
        page_limit=int(api.get("page_limit", 1000)),
        csv_options=dict(doc.get("files", {}).get("csv", {})),
    )


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
    if col.dtype == object:
        blank = col.astype("str").str.strip().eq("").to_numpy(dtype=bool, na_value=False)
        present = present & ~blank
    return present


def _as_str(col: pd.Series) -> pd.Series:
    if pd.api.types.is_string_dtype(col.dtype) and col.dtype != object:
        return col
    out = col.astype("str")
    return out.where(col.notna().to_numpy(), None)


def _type_column(col: pd.Series, spec: FieldSpec) -> tuple[pd.Series, np.ndarray]:
    """(typed column, mask of present-but-unparseable cells)."""
    present = _present(col)
    kind = spec.type
    if kind in ("string", "phone"):
        typed = _as_str(col)
        return typed.where(present, None), np.zeros(len(col), dtype=bool)
    if kind == "timestamp":
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            typed = col.dt.tz_convert("UTC")
        elif pd.api.types.is_datetime64_dtype(col.dtype):
            typed = col.dt.tz_localize("UTC")  # naive timestamps in sources are UTC
        else:
            typed = pd.to_datetime(
                _as_str(col), utc=True, format=spec.format or "ISO8601", errors="coerce"
            )
        typed = typed.dt.as_unit("ms")
        return typed, present & typed.isna().to_numpy()
    if kind == "date":
        if pd.api.types.is_datetime64_any_dtype(col.dtype):
            parsed = col
        else:
            parsed = pd.to_datetime(
                _as_str(col).where(present, None), format=spec.format or "%Y-%m-%d", errors="coerce"
            )
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
        text = _as_str(col).str.strip().str.lower()
        is_true = text.isin(_TRUE).to_numpy(dtype=bool, na_value=False)
        is_false = text.isin(_FALSE).to_numpy(dtype=bool, na_value=False)
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


def prepare(
    entity_map: EntityMap,
    source: pd.DataFrame,
    *,
    source_kind: str,
    row_ref: pd.Series,
    regions: Mapping[str, str] | None = None,
) -> Prepared:
    """Map, type, normalise phones and validate one batch of CRM records.

    `source`: the records with CRM field names (API JSON or a file's columns), any
    index; `row_ref`: aligned with `source`, how quarantine rows name each record.
    `regions`: business_id → ISO country, the default region of phone numbers.
    Raises MappingError when a required field is missing from the source entirely.
    """
    missing = [f.source for f in entity_map.fields if f.required and f.source not in source]
    if missing:
        raise MappingError(
            f"{entity_map.entity}: required field(s) {missing} missing "
            f"(have {sorted(map(str, source.columns))})"
        )
    source = source.reset_index(drop=True)
    row_ref = row_ref.reset_index(drop=True)
    typed: dict[str, pd.Series] = {}
    bad_cells: list[tuple[np.ndarray, str, pd.Series]] = []
    for spec in entity_map.fields:
        col = (
            source[spec.source]
            if spec.source in source
            else pd.Series([None] * len(source), dtype=object)
        )
        values, bad = _type_column(col, spec)
        typed[spec.column] = values
        if bad.any():
            shown = _as_str(col).fillna("")
            reasons = f"{spec.source}: cannot parse '" + shown + f"' as {spec.type}"
            bad_cells.append((bad, spec.column, reasons))
        if spec.type == "phone":
            business = typed.get("business_id", pd.Series([None] * len(source)))
            region = business.map(dict(regions or {})).fillna(UNKNOWN_REGION)
            phones = normalize_phones(values, region.astype("str"))
            typed["phone_e164"] = phones["phone_e164"]
            typed["customer_id"] = customer_id(phones["phone_e164"])
            err = phones["error"].notna().to_numpy()
            if err.any():
                # Element-wise: "phone invalid number (region RU): '8 (941) 967-8'".
                reasons = (
                    f"{spec.source} " + phones["error"].fillna("").astype(str)
                    + " (region " + region.astype(str) + "): '" + values.fillna("").astype(str)
                    + "'"
                )  # fmt: skip
                bad_cells.append((err, "phone_e164", reasons))
    frame = pd.DataFrame(typed)

    # A bad value costs the row only where the row cannot do without it: a `required`
    # field, the phone the customer id comes from, or a column whose missing value would
    # read as a real one (a price of 0). Elsewhere (a nullable birthday, a name, a
    # consent flag, which then reads "no") the value is dropped and quarantined and the
    # row kept, so one impossible birthday never removes a customer and their visits.
    essential = {
        f.column
        for f in entity_map.fields
        if f.required or not (f.nullable or f.type in ("string", "bool"))
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
