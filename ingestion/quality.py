"""Data quality: declared expectation suites → good rows, quarantine rows, check results.

Suites live in `quality_suites.yaml` (one per source table, e.g. "crm_customers",
"partner_events"); each expectation is one of Great Expectations' column-map
expectations: not_null, in_set, match_regex, between.

Engines. Great Expectations 1.24 is the engine of record: `gx_suite(name)` builds the
`ExpectationSuite`, and `validate(..., engine="gx")` runs it (ephemeral context,
pandas data source, result_format COMPLETE → `unexpected_index_list`). The default
engine "pandas" evaluates the *same declared expectations* with vectorised
pandas/pyarrow operations using GX's own semantics (missing values pass every
expectation except not_null; regexes are searched, `str.contains`; bounds
inclusive). Why: GX costs ~0.1 s of fixed overhead per batch plus ~0.1 s per
expectation per million rows, and builds Python lists of failing indices, which
does not fit the 1M rows/s file path; tests/quality prove both engines agree on
the same frames.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

SUITES_FILE = Path(__file__).with_name("quality_suites.yaml")
QUARANTINE_COLUMNS: tuple[str, ...] = ("source_kind", "row_ref", "field", "reason", "raw_row")
KINDS = ("not_null", "in_set", "match_regex", "between")
SEVERITIES = ("error", "warn")
_GX_TYPES = {
    "not_null": "expect_column_values_to_not_be_null",
    "in_set": "expect_column_values_to_be_in_set",
    "match_regex": "expect_column_values_to_match_regex",
    "between": "expect_column_values_to_be_between",
}


class SuiteError(ValueError):
    """A suite is unknown, malformed, or names a column the frame does not have."""


@dataclass(frozen=True)
class Expectation:
    """One declared expectation on one column."""

    expect: str
    column: str
    reason: str
    values: tuple[Any, ...] | None = None
    regex: str | None = None
    min: float | None = None
    max: float | None = None
    severity: str = "warn"
    """How bad a failure is where rows are already loaded (the GX checks on staging):
    "error" (keys, required values, enumerations) or "warn" (soft formats, ranges).
    Declared per expectation; default "error" for not_null, "warn" otherwise."""

    @property
    def name(self) -> str:
        """GX's expectation type, e.g. `expect_column_values_to_not_be_null`."""
        return _GX_TYPES[self.expect]

    @property
    def rule(self) -> str:
        """The rule in words, for quarantine reasons a user can act on."""
        if self.expect == "not_null":
            return "a value is required"
        if self.expect == "in_set":
            return "expected one of " + ", ".join(repr(v) for v in self.values or ())
        if self.expect == "match_regex":
            return f"expected to match {self.regex}"
        bounds = [f">= {self.min:g}" if self.min is not None else "",
                  f"<= {self.max:g}" if self.max is not None else ""]  # fmt: skip
        return "expected " + " and ".join(b for b in bounds if b)

    def explain(self, value: Any) -> str:
        """`<reason>: <value> (<rule>)`, e.g. `unknown status: 'done' (expected one of …)`."""
        shown = "" if value is None or _is_missing(value) else f": {value!r}"
        return f"{self.reason}{shown} ({self.rule})"


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # arrays, lists
        return False


@dataclass
class ValidationResult:
    """`good`: rows that passed every expectation (original index and columns).
    `quarantine`: one row per (failed row, failed column) in raw.quarantine's columns
    `source_kind, row_ref, field, reason, raw_row` (raw_row = JSON of the whole row);
    the reason names the value and the rule it broke.
    `checks`: one dict per expectation — name, column, success, unexpected_count,
    reason — suitable as Dagster asset-check metadata."""

    good: pd.DataFrame
    quarantine: pd.DataFrame
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(check["success"] for check in self.checks)


def _parse_suite(name: str, entries: list[dict[str, Any]]) -> tuple[Expectation, ...]:
    out = []
    for entry in entries:
        kind = entry.get("expect")
        if kind not in KINDS or "column" not in entry:
            raise SuiteError(f"suite {name!r}: bad expectation {entry!r} (expect one of {KINDS})")
        values = entry.get("values")
        severity = entry.get("severity", "error" if kind == "not_null" else "warn")
        if severity not in SEVERITIES:
            raise SuiteError(
                f"suite {name!r}: severity {severity!r} on {entry['column']!r} "
                f"(expect one of {SEVERITIES})"
            )
        out.append(
            Expectation(
                expect=kind,
                column=entry["column"],
                reason=entry.get("reason", kind),
                values=tuple(values) if values is not None else None,
                regex=entry.get("regex"),
                min=entry.get("min"),
                max=entry.get("max"),
                severity=severity,
            )
        )
        if kind == "in_set" and values is None:
            raise SuiteError(f"suite {name!r}: in_set on {entry['column']!r} needs `values`")
        if kind == "match_regex" and not entry.get("regex"):
            raise SuiteError(f"suite {name!r}: match_regex on {entry['column']!r} needs `regex`")
        if kind == "between" and entry.get("min") is None and entry.get("max") is None:
            raise SuiteError(f"suite {name!r}: between on {entry['column']!r} needs min or max")
    return tuple(out)


@cache
def _declared() -> dict[str, tuple[Expectation, ...]]:
    raw = yaml.safe_load(SUITES_FILE.read_text(encoding="utf-8"))
    return {name: _parse_suite(name, entries) for name, entries in raw.items()}


_registered: dict[str, tuple[Expectation, ...]] = {}


def register_suite(name: str, entries: list[dict[str, Any]]) -> None:
    """Add or replace a suite at runtime (same entry format as quality_suites.yaml)."""
    _registered[name] = _parse_suite(name, entries)
    gx_suite.cache_clear()


def suite_names() -> list[str]:
    return sorted({*_declared(), *_registered})


def get_suite(name: str) -> tuple[Expectation, ...]:
    """The declared expectations of a suite."""
    if name in _registered:
        return _registered[name]
    try:
        return _declared()[name]
    except KeyError:
        raise SuiteError(f"unknown quality suite {name!r}; known: {suite_names()}") from None


# --- the vectorised engine ------------------------------------------------------------


def _numeric(column: pd.Series) -> pd.Series:
    """Numbers for range checks; Decimal and arrow decimals compare exactly enough as
    float64 against the declared (integer) bounds. Non-numbers become NaN → fail."""
    if isinstance(column.dtype, pd.ArrowDtype) and pa.types.is_decimal(column.dtype.pyarrow_dtype):
        # Through arrow's cast (pandas' astype goes via Python Decimal objects: 10× slower).
        as_float = pa.array(column).cast(pa.float64()).to_numpy(zero_copy_only=False)
        return pd.Series(as_float, index=column.index)
    return pd.to_numeric(column, errors="coerce")


def _failing(frame: pd.DataFrame, exp: Expectation) -> np.ndarray:
    """Boolean mask of the rows that fail `exp` (GX semantics)."""
    column = frame[exp.column]
    present = column.notna().to_numpy(dtype=bool, na_value=False)
    if exp.expect == "not_null":
        return ~present
    if exp.expect == "in_set":
        ok = column.isin(list(exp.values or ())).to_numpy(dtype=bool, na_value=False)
    elif exp.expect == "match_regex":
        ok = column.astype("str").str.contains(exp.regex).to_numpy(dtype=bool, na_value=False)
    else:
        numbers = _numeric(column)
        ok = numbers.notna().to_numpy(dtype=bool, na_value=False)
        values = numbers.to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            if exp.min is not None:
                ok = ok & (values >= exp.min)
            if exp.max is not None:
                ok = ok & (values <= exp.max)
    return present & ~ok


# --- Great Expectations, the engine of record ------------------------------------------


@cache
def _gx_batch_definition() -> Any:
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    try:
        context.variables.progress_bars = {"globally": False}
    except Exception:  # progress bars are cosmetics; older configs lack the field
        logging.getLogger(__name__).debug("could not disable GX progress bars")
    source = context.data_sources.add_pandas("revisit_quality")
    asset = source.add_dataframe_asset(name="frame")
    return asset.add_batch_definition_whole_dataframe("whole_frame")


@cache
def gx_suite(name: str) -> Any:
    """The declared suite as a great_expectations `ExpectationSuite`."""
    return build_gx_suite(name)


def build_gx_suite(
    name: str, *, columns: dict[str, str] | None = None, suite_name: str | None = None
) -> Any:
    """A new `ExpectationSuite` of suite `name` (not cached: a GX context binds the suite
    object it is added to). `columns` renames suite columns for a table that names them
    differently (suite column → table column). Each expectation carries its severity
    (error → GX "critical", warn → "warning") and its reason as `meta`, for Data Docs."""
    import great_expectations as gx
    from great_expectations import expectations as gxe

    renamed = columns or {}
    built = []
    for exp in get_suite(name):
        common: dict[str, Any] = {
            "column": renamed.get(exp.column, exp.column),
            "severity": "critical" if exp.severity == "error" else "warning",
            "meta": {"reason": exp.reason, "severity": exp.severity},
        }
        if exp.expect == "not_null":
            built.append(gxe.ExpectColumnValuesToNotBeNull(**common))
        elif exp.expect == "in_set":
            built.append(gxe.ExpectColumnValuesToBeInSet(value_set=exp.values, **common))
        elif exp.expect == "match_regex":
            built.append(gxe.ExpectColumnValuesToMatchRegex(regex=exp.regex, **common))
        else:
            built.append(
                gxe.ExpectColumnValuesToBeBetween(min_value=exp.min, max_value=exp.max, **common)
            )
    return gx.ExpectationSuite(name=suite_name or name, expectations=built)


def _gx_failing(frame: pd.DataFrame, name: str) -> list[np.ndarray]:
    """Failing-row masks per expectation, computed by Great Expectations."""
    expectations = get_suite(name)
    # GX's range check is per value for non-numpy dtypes; give it floats (as the
    # vectorised engine compares) so decimals and arrow types behave the same.
    view = frame.reset_index(drop=True)
    for exp in expectations:
        if exp.expect == "between":
            view[exp.column] = _numeric(view[exp.column]).astype("float64")
    batch = _gx_batch_definition().get_batch(batch_parameters={"dataframe": view})
    result = batch.validate(gx_suite(name), result_format={"result_format": "COMPLETE"})
    masks = []
    for exp, res in zip(expectations, result.results, strict=True):
        if res.exception_info and res.exception_info.get("raised_exception"):
            raise SuiteError(
                f"suite {name!r}: {exp.name} on {exp.column!r} raised: "
                f"{res.exception_info.get('exception_message')}"
            )
        mask = np.zeros(len(view), dtype=bool)
        mask[np.asarray(res.result.get("unexpected_index_list") or [], dtype=np.int64)] = True
        masks.append(mask)
    return masks


# --- the public entry point ------------------------------------------------------------


def _raw_rows(frame: pd.DataFrame) -> list[str]:
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return [json.dumps(r, default=str, ensure_ascii=False) for r in records]


def validate(
    frame: pd.DataFrame,
    suite: str,
    *,
    source: str,
    row_ref: pd.Series | None = None,
    engine: Literal["pandas", "gx"] = "pandas",
    optional: frozenset[str] = frozenset(),
) -> ValidationResult:
    """Run suite `suite` on `frame`.

    `source` becomes `source_kind` of quarantine rows (e.g. "crm_api", "crm_file",
    "partner_feed"); `row_ref` (aligned with `frame`) names each row in its source
    (line number, record id), default the frame's index. Every row failing any
    expectation is quarantined (one quarantine row per failed column) and left out
    of `good` — except when the failing column is in `optional`: then only the value is
    dropped (set to missing in `good`, quarantined with "row kept") and the row stays, so
    one impossible birthday never costs a customer. Raises SuiteError when the suite is
    unknown or the frame lacks one of its columns (a mapping bug, not bad data).
    """
    expectations = get_suite(suite)
    missing = sorted({e.column for e in expectations} - set(frame.columns))
    if missing:
        raise SuiteError(f"suite {suite!r}: frame has no column(s) {missing}")
    if engine == "gx":
        masks = _gx_failing(frame, suite)
    elif engine == "pandas":
        masks = [_failing(frame, exp) for exp in expectations]
    else:
        raise ValueError(f"unknown engine {engine!r}")

    checks = [
        {
            "name": exp.name,
            "column": exp.column,
            "success": not mask.any(),
            "unexpected_count": int(mask.sum()),
            "reason": exp.reason,
        }
        for exp, mask in zip(expectations, masks, strict=True)
    ]
    bad_any = np.zeros(len(frame), dtype=bool)
    rejects = np.zeros(len(frame), dtype=bool)
    for exp, mask in zip(expectations, masks, strict=True):
        bad_any |= mask
        if exp.column not in optional:
            rejects |= mask
    if not bad_any.any():
        return ValidationResult(frame, _empty_quarantine(), checks)

    bad_pos = np.flatnonzero(bad_any)
    refs = (
        row_ref.iloc[bad_pos].astype(str).to_numpy()
        if row_ref is not None
        else frame.index[bad_pos].astype(str).to_numpy()
    )
    raw_json = dict(zip(bad_pos.tolist(), _raw_rows(frame.iloc[bad_pos]), strict=True))
    ref_of = dict(zip(bad_pos.tolist(), refs.tolist(), strict=True))
    rows = []
    # Several expectations on one column (not_null + regex) fail once per column.
    seen: set[tuple[int, str]] = set()
    dropped: dict[str, np.ndarray] = {}
    for exp, mask in zip(expectations, masks, strict=True):
        kept = exp.column in optional
        for pos in np.flatnonzero(mask).tolist():
            if (pos, exp.column) in seen:
                continue
            seen.add((pos, exp.column))
            reason = exp.explain(frame[exp.column].iat[pos])
            if kept and not rejects[pos]:
                reason += "; value dropped, row kept"
            rows.append((source, ref_of[pos], exp.column, reason, raw_json[pos]))
        if kept:
            dropped[exp.column] = dropped.get(exp.column, np.zeros(len(frame), bool)) | mask
    quarantine = pd.DataFrame(rows, columns=list(QUARANTINE_COLUMNS), dtype=object)
    good = frame.iloc[np.flatnonzero(~rejects)]
    if dropped:
        good = good.copy()
        for column, mask in dropped.items():
            good.loc[mask[~rejects], column] = None
    return ValidationResult(good, quarantine, checks)


def _empty_quarantine() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in QUARANTINE_COLUMNS})


def quarantine_rows(
    source: str, row_ref: pd.Series, field_name: str, reasons: pd.Series, raw: pd.DataFrame
) -> pd.DataFrame:
    """Quarantine rows for failures found outside a suite (e.g. unparseable values).

    All arguments are aligned with `raw` (the original rows).
    """
    if len(raw) == 0:
        return _empty_quarantine()
    return pd.DataFrame(
        {
            "source_kind": source,
            "row_ref": row_ref.astype(str).to_numpy(dtype=object),
            "field": field_name,
            "reason": reasons.astype(str).to_numpy(dtype=object),
            "raw_row": _raw_rows(raw),
        },
        dtype=object,
    )
