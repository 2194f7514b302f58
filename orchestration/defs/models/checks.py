"""Great Expectations checks on the staging models: the ingestion suites, run by GX on
what dbt built (`ingestion.gx_checks`), one `great_expectations` check per staging asset.

The checks run in the same job as the dbt build, after it (each checked staging asset
is an input of the check step), whenever the job selects those assets: `build_models`
and `revisit_main`. One step validates every selected table: one warehouse connection,
one GX context, one Data Docs build. A check fails at ERROR severity when an
expectation the suite marks `severity: error` fails (keys, required values, phone
format, enumerations), at WARN when only soft ones do.
"""

from collections.abc import Iterator

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    Config,
    MetadataValue,
    multi_asset_check,
)

from ingestion.gx_checks import (
    DEFAULT_SAMPLE_ROWS,
    STAGING_SUITES,
    TableValidation,
    validate_staging,
)
from orchestration.defs.models.assets import model_key
from orchestration.resources import WarehouseResource
from revisit.settings import get_settings

GX_CHECK = "great_expectations"

_KEYS = {spec.table: model_key(spec.table) for spec in STAGING_SUITES}
GX_CHECK_SPECS = [
    AssetCheckSpec(
        name=GX_CHECK,
        asset=key,
        description=(
            f"Great Expectations suite `{spec.suite}` (ingestion/quality_suites.yaml) on the "
            "staging rows; Data Docs linked in the metadata."
        ),
    )
    for spec, key in zip(STAGING_SUITES, _KEYS.values(), strict=True)
]


class GxChecksConfig(Config):
    sample_rows: int = DEFAULT_SAMPLE_ROWS
    """Tables with more rows are validated on a random sample of this many rows."""


def _failure_line(table: TableValidation) -> str:
    lines = []
    for exp in table.failed:
        shown = ", ".join(repr(v) for v in exp.unexpected_values)
        lines.append(
            f"[{exp.severity}] {exp.label}: {exp.unexpected_count} unexpected"
            + (f" (e.g. {shown})" if shown else "")
            + f" — {exp.reason}"
        )
    return "\n".join(lines)


def check_result(table: TableValidation) -> AssetCheckResult:
    """The asset-check result of one staging table's GX validation."""
    metadata: dict[str, object] = {
        "rows_total": table.rows_total,
        "rows_validated": table.rows_validated,
        "sampled": MetadataValue.bool(table.sampled),
        "expectations_evaluated": len(table.expectations),
        "expectations_failed": len(table.failed),
        "unexpected_counts": MetadataValue.json(
            {e.label: e.unexpected_count for e in table.expectations}
        ),
    }
    if table.failed:
        metadata["failed_expectations"] = MetadataValue.md(_failure_line(table))
    if table.docs_page is not None:
        metadata["data_docs"] = MetadataValue.url(table.docs_page.as_uri())
        metadata["data_docs_path"] = MetadataValue.path(str(table.docs_page))
    return AssetCheckResult(
        asset_key=_KEYS[table.table],
        check_name=GX_CHECK,
        passed=table.success,
        severity=AssetCheckSeverity.WARN if table.severity == "warn" else AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=(
            f"{len(table.failed)} of {len(table.expectations)} expectations failed"
            if table.failed
            else f"{len(table.expectations)} expectations passed"
        )
        + (
            f" on a sample of {table.rows_validated:,} of {table.rows_total:,} rows"
            if table.sampled
            else f" on {table.rows_total:,} rows"
        ),
    )


@multi_asset_check(
    specs=GX_CHECK_SPECS,
    name="staging_great_expectations",
    can_subset=True,
    description="Great Expectations suites on the staging models; Data Docs under "
    "<data dir>/gx/data_docs/local_site/.",
)
def staging_great_expectations(
    context: AssetCheckExecutionContext, config: GxChecksConfig, warehouse: WarehouseResource
) -> Iterator[AssetCheckResult]:
    selected = context.selected_asset_check_keys
    tables = [t for t, key in _KEYS.items() if AssetCheckKey(key, GX_CHECK) in selected]
    gx_root = get_settings().data_dir / "gx"
    with warehouse.get_client() as client:
        validation = validate_staging(
            client, gx_root, tables=tables, sample_rows=config.sample_rows
        )
    context.log.info("GX Data Docs: %s", validation.docs_index)
    for table in validation.tables:
        yield check_result(table)


CHECKS = [staging_great_expectations]
