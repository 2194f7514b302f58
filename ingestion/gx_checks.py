"""Great Expectations on the staging tables: the declared suites, run where rows landed.

The load path validates rows vectorised (`ingestion.quality.validate`) and quarantines
bad ones before they reach `raw.*`. This module runs the *same* suites
(`quality_suites.yaml`) with Great Expectations on what the warehouse actually holds
after dbt: the staging views (`staging.stg_*`, latest version of each raw row). It
catches rows that bypassed ingestion (a manual INSERT, a loader bug, a replayed
backfill) and leaves a record a person can read: GX Data Docs under
`<gx_root>/data_docs/local_site/`.

Cost. Only the columns the suite names are read. Tables above `sample_rows` rows are
validated on a uniform random sample of that many rows (`TableValidation.sampled`,
`rows_validated` vs `rows_total` say so): GX evaluates per row in pandas, and the
checks run inside the nightly build. Measured on 2 cores: a 1M-row appointments view,
9 expectations, 1.1 s on the default 250k sample vs 2.0 s in full; the demo's 9 staging
tables (605k rows, appointments sampled) 2 s, plus GX's import (~2–6 s, once a process).

The Data Docs index lists the validations of the latest run; pages of earlier runs
stay on disk under `validations/<suite>/…` (they are not pruned).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd
from clickhouse_connect.driver.client import Client

from ingestion.quality import SuiteError, build_gx_suite, get_suite

DEFAULT_SAMPLE_ROWS = 250_000
DOCS_SITE = "local_site"
_SHOWN_VALUES = 5


@dataclass(frozen=True)
class StagingSuite:
    """A staging table and the suite of the raw table it reads.

    `columns`: suite column → staging column, for the columns staging renames (a suite
    names raw columns). Columns staging keeps need no entry."""

    table: str
    suite: str
    columns: dict[str, str] = field(default_factory=dict)

    def column(self, suite_column: str) -> str:
        return self.columns.get(suite_column, suite_column)


# Staging renames only columns no suite names today (name → business_name, …); a
# rename of a suite column goes here, and `validate_staging` fails naming the column
# when staging lacks one, rather than validating nothing.
STAGING_SUITES: tuple[StagingSuite, ...] = (
    StagingSuite("stg_crm__businesses", "crm_businesses"),
    StagingSuite("stg_crm__locations", "crm_locations"),
    StagingSuite("stg_crm__services", "crm_services"),
    StagingSuite("stg_crm__customers", "crm_customers"),
    StagingSuite("stg_crm__appointments", "crm_appointments"),
    StagingSuite("stg_partners__events", "partner_events"),
    StagingSuite("stg_partners__offers", "partner_offers"),
    StagingSuite("stg_messenger__sends", "message_sends"),
    StagingSuite("stg_messenger__events", "messenger_events"),
)


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation on one staging column."""

    name: str  # GX expectation type, e.g. expect_column_values_to_match_regex
    column: str  # the staging column
    severity: str  # "error" | "warn"
    reason: str
    success: bool
    unexpected_count: int
    unexpected_values: list[Any]  # a few of them, as GX reports them

    @property
    def label(self) -> str:
        return f"{self.name}({self.column})"


@dataclass(frozen=True)
class TableValidation:
    """The GX validation of one staging table."""

    table: str
    suite: str
    rows_total: int
    rows_validated: int
    expectations: list[ExpectationOutcome]
    docs_page: Path | None  # this validation's Data Docs page

    @property
    def sampled(self) -> bool:
        return self.rows_validated < self.rows_total

    @property
    def success(self) -> bool:
        return all(e.success for e in self.expectations)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if not e.success]

    @property
    def severity(self) -> str | None:
        """ "error" when an error expectation failed, "warn" when only warn ones did."""
        severities = {e.severity for e in self.failed}
        return "error" if "error" in severities else ("warn" if severities else None)


@dataclass(frozen=True)
class StagingValidation:
    tables: list[TableValidation]
    docs_index: Path

    @property
    def success(self) -> bool:
        return all(t.success for t in self.tables)


def docs_index(gx_root: Path) -> Path:
    """Where the Data Docs index of `validate_staging(…, gx_root)` is."""
    return gx_root / "data_docs" / DOCS_SITE / "index.html"


def _context(gx_root: Path) -> Any:
    """An ephemeral GX context whose Data Docs site is a directory under `gx_root`.

    Ephemeral: suites are declared in quality_suites.yaml, not in a GX project, and
    the stores need not outlive the run; only the rendered Data Docs are kept."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    try:
        context.variables.progress_bars = {"globally": False}
    except Exception:  # progress bars are cosmetics; older configs lack the field
        logging.getLogger(__name__).debug("could not disable GX progress bars")
    site_dir = docs_index(gx_root).parent
    site_dir.mkdir(parents=True, exist_ok=True)
    context.update_data_docs_site(
        site_name=DOCS_SITE,
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(site_dir),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    return context


def _staging_columns(client: Client, database: str, table: str) -> set[str]:
    rows = client.query(
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String}",
        parameters={"db": database, "t": table},
    ).result_rows
    return {row[0] for row in rows}


def _read(
    client: Client, database: str, spec: StagingSuite, sample_rows: int
) -> tuple[pd.DataFrame, int]:
    """The suite's columns of the staging table (all rows, or a random sample) and the
    table's row count. Range-checked columns come as Float64: GX compares Decimals per
    value in Python, floats vectorised, and the bounds are declared as numbers."""
    expectations = get_suite(spec.suite)
    present = _staging_columns(client, database, spec.table)
    if not present:
        raise SuiteError(f"{database}.{spec.table} does not exist (was dbt built?)")
    needed: dict[str, bool] = {}  # staging column → read as Float64
    for exp in expectations:
        col = spec.column(exp.column)
        needed[col] = needed.get(col, False) or exp.expect == "between"
    missing = sorted(set(needed) - present)
    if missing:
        raise SuiteError(
            f"{database}.{spec.table} has no column(s) {missing} that suite {spec.suite!r} "
            "checks: map the renamed column in ingestion/gx_checks.py STAGING_SUITES"
        )
    select = ", ".join(
        f"toFloat64(`{col}`) AS `{col}`" if numeric else f"`{col}`"
        for col, numeric in needed.items()
    )
    source = f"`{database}`.`{spec.table}`"
    total = int(client.command(f"SELECT count() FROM {source}"))
    sql = f"SELECT {select} FROM {source}"
    if total > sample_rows:
        sql += f" ORDER BY rand() LIMIT {int(sample_rows)}"
    frame = client.query_df(sql)
    if frame.empty and list(frame.columns) != list(needed):
        # An empty result comes back without columns; GX then fails every expectation
        # on a missing column, while an empty table has no bad row.
        frame = pd.DataFrame({col: pd.Series([], dtype="float64" if numeric else object)
                              for col, numeric in needed.items()})  # fmt: skip
    return frame, total


def _page(context: Any, identifier: Any) -> Path | None:
    for site in context.get_docs_sites_urls(resource_identifier=identifier):
        url = site.get("site_url")
        if site.get("site_name") == DOCS_SITE and url and url.startswith("file://"):
            return Path(unquote(urlparse(url).path))
    return None


def _raised(info: Any) -> str | None:
    """The message of an exception GX caught while evaluating an expectation. GX keeps
    it either flat or per metric ({metric id: {raised_exception, exception_message}})."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _shown(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if value not in out:
            out.append(value)
        if len(out) == _SHOWN_VALUES:
            break
    return out


def validate_staging(
    client: Client,
    gx_root: Path,
    *,
    tables: Iterable[str] | None = None,
    suites: Iterable[StagingSuite] = STAGING_SUITES,
    database: str = "staging",
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
) -> StagingValidation:
    """Run each staging table's suite with Great Expectations and build Data Docs.

    `tables`: staging table names (default every table of `suites`). Raises
    SuiteError when a table is unknown, missing, or lacks a column its suite checks (a
    mapping or model bug, not bad data); bad data is reported, not raised.
    """
    import great_expectations as gx

    known = {spec.table: spec for spec in suites}
    wanted = list(tables) if tables is not None else list(known)
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise SuiteError(f"no suite for staging table(s) {unknown}; known: {sorted(known)}")

    context = _context(gx_root)
    source = context.data_sources.add_pandas("staging")
    runs = []
    for name in wanted:
        spec = known[name]
        frame, total = _read(client, database, spec, sample_rows)
        batch = source.add_dataframe_asset(name=spec.table).add_batch_definition_whole_dataframe(
            "sample" if total > len(frame) else "whole_table"
        )
        suite = context.suites.add(
            build_gx_suite(spec.suite, columns=spec.columns, suite_name=spec.table)
        )
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=spec.table, data=batch, suite=suite)
        )
        result = definition.run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20},
        )
        runs.append((spec, total, len(frame), result))

    context.build_data_docs(site_names=[DOCS_SITE])
    out = []
    for spec, total, validated, result in runs:
        outcomes = []
        for exp, res in zip(get_suite(spec.suite), result.results, strict=True):
            raised = _raised(res.exception_info)
            if raised:
                raise SuiteError(
                    f"{spec.table}: {exp.name} on {spec.column(exp.column)!r} raised: {raised}"
                )
            outcomes.append(
                ExpectationOutcome(
                    name=exp.name,
                    column=spec.column(exp.column),
                    severity=exp.severity,
                    reason=exp.reason,
                    success=bool(res.success),
                    unexpected_count=int(res.result.get("unexpected_count") or 0),
                    unexpected_values=_shown(res.result.get("partial_unexpected_list") or []),
                )
            )
        identifier = _result_identifier(result)
        out.append(
            TableValidation(
                table=spec.table,
                suite=spec.suite,
                rows_total=total,
                rows_validated=validated,
                expectations=outcomes,
                docs_page=_page(context, identifier) if identifier is not None else None,
            )
        )
    return StagingValidation(tables=out, docs_index=docs_index(gx_root))


def _result_identifier(result: Any) -> Any:
    """The key GX stored `result` under, which is also its Data Docs page's key (as
    `ValidationDefinition.run` builds it: suite, run id, batch id)."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    if not result.batch_id:
        return None
    return ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=result.suite_name),
        run_id=result.meta["run_id"],
        batch_identifier=result.batch_id,
    )
