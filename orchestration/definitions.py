"""The Dagster code location of Revisit (`dagster dev -m orchestration.definitions`).

Each domain under `orchestration/defs/` (ingestion, models, ml, activation) brings its
assets, jobs, schedules, sensors and checks; this module merges them with the shared
resources, the platform job `revisit_main` and the executor.

Runs use the in-process executor: the embedded warehouse is one engine per process
and per directory, so steps run one at a time in the run's own process, each
opening and closing the warehouse, and dbt steps run while nothing holds it.
"""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job, in_process_executor

from orchestration.defs import activation, ingestion, ml, models
from orchestration.resources import WarehouseResource
from revisit.settings import get_settings

# Each domain's `defs` (module attributes, not module-scope Definitions: Dagster loads
# the one Definitions object this module holds, `defs`).
DOMAINS = {
    "ingestion": ingestion.defs,
    "models": models.defs,
    "ml": ml.defs,
    "activation": activation.defs,
}

revisit_main = define_asset_job(
    "revisit_main",
    selection=AssetSelection.all(),
    description="Everything end to end: ingestion → dbt → ML → activation (dry run).",
)

defs = Definitions.merge(
    *DOMAINS.values(),
    Definitions(
        jobs=[revisit_main],
        resources={"warehouse": WarehouseResource(dsn=get_settings().warehouse_dsn)},
        executor=in_process_executor,
    ),
)
