"""The marketer's report as an asset: after each build of the marts (and the scores),
`warehouse.report.build_report` renders every business's HTML, XLSX and PDF under
`<exports_dir>/reports`; the materialisation's metadata names the folder and the files."""

import time

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AutomationCondition,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)

from orchestration.defs.models.assets import model_key
from orchestration.resources import WarehouseResource
from revisit.settings import get_settings

# The marts the report reads (warehouse/report/queries.py) and the scores.
READS = [
    *(model_key(name) for name in (
        "dim_businesses", "rfm_segments", "rfm_segment_history", "rfm_segment_migration",
        "campaign_results", "partner_dashboard", "partner_offer_conversion_by_month",
        "cross_business_flows", "fct_visits",
    )),
    AssetKey(["ml", "revisit_scores"]),
]  # fmt: skip


class ReportConfig(Config):
    period: str = ""
    """Month YYYY-MM; empty means the month the latest RFM snapshot closes."""
    lang: str = ""
    """ru or en; empty means each business's language (from its country)."""


@asset(
    key=AssetKey(["exports", "marketer_report"]),
    group_name="reports",
    deps=READS,
    kinds={"html", "excel", "pdf"},
    automation_condition=AutomationCondition.eager(),
    description="Per business and month: RFM grid, segments with actions, trend and "
    "migration, campaigns against their holdout, partners, cross-business flows, revisit "
    "score — as HTML, XLSX and PDF.",
)
def marketer_report(
    context: AssetExecutionContext, config: ReportConfig, warehouse: WarehouseResource
) -> MaterializeResult:
    from revisit.report_commands import promoted_metadata
    from warehouse.exports import Lang
    from warehouse.report import build_report, parse_period

    settings = get_settings()
    out_dir = settings.exports_dir / "reports"
    started = time.perf_counter()
    with warehouse.get_client() as client:
        files = build_report(
            client, out_dir,
            period=parse_period(config.period) if config.period else None,
            lang=Lang(config.lang) if config.lang else None,
            model_metadata=promoted_metadata(settings),
        )  # fmt: skip
    seconds = time.perf_counter() - started
    context.log.info(f"{len(files)} report file(s) in {out_dir} ({seconds:.1f} s)")
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(out_dir)),
            "period": files[0].period if files else "",
            "businesses": len({f.business_id for f in files}),
            "files": MetadataValue.json([str(f.path.relative_to(out_dir)) for f in files]),
            "seconds": round(seconds, 2),
        }
    )
