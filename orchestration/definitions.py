"""The Dagster code location of Revisit (`dagster dev -m orchestration.definitions`).

Runs use the in-process executor: the embedded warehouse is one engine per process
and per directory, so steps run one at a time in the run's own process, each
opening and closing the warehouse, and dbt steps run while nothing holds it.
"""

from __future__ import annotations

from dagster import Definitions, define_asset_job, in_process_executor

from orchestration.assets.dbt import dbt_models, dbt_resource
from orchestration.assets.ingestion import INGESTION_ASSETS
from orchestration.resources import WarehouseResource
from revisit.settings import get_settings

SETTINGS = get_settings()

ALL_ASSETS = [*INGESTION_ASSETS, dbt_models]

demo_job = define_asset_job(
    "revisit_main",
    selection="*",
    description="Everything end to end: ingestion → dbt → ML → activation (dry run).",
)

defs = Definitions(
    assets=ALL_ASSETS,
    jobs=[demo_job],
    resources={
        "warehouse": WarehouseResource(dsn=SETTINGS.warehouse_dsn),
        "dbt": dbt_resource(),
    },
    executor=in_process_executor,
)
