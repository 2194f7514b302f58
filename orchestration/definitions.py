"""The Dagster code location of Revisit (`dagster dev -m orchestration.definitions`).

Runs use the in-process executor: the embedded warehouse is one engine per process
and per directory, so steps run one at a time in the run's own process, each
opening and closing the warehouse, and dbt steps run while nothing holds it.
"""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from orchestration.assets.activation import ACTIVATION_ASSETS
from orchestration.assets.dbt import dbt_models, dbt_resource
from orchestration.assets.ingestion import INGESTION_ASSETS
from orchestration.assets.ml import ML_ASSETS
from orchestration.jobs import (
    ACTIVATION_JOBS,
    crm_job,
    main_job,
    models_job,
    partner_job,
    spool_job,
)
from orchestration.resources import WarehouseResource
from orchestration.schedules import SCHEDULES
from orchestration.sensors import SENSORS
from revisit.settings import get_settings

SETTINGS = get_settings()

ALL_ASSETS = [*INGESTION_ASSETS, dbt_models, *ML_ASSETS, *ACTIVATION_ASSETS]

defs = Definitions(
    assets=ALL_ASSETS,
    jobs=[main_job, crm_job, spool_job, partner_job, models_job, *ACTIVATION_JOBS],
    schedules=SCHEDULES,
    sensors=SENSORS,
    resources={
        "warehouse": WarehouseResource(dsn=SETTINGS.warehouse_dsn),
        "dbt": dbt_resource(),
    },
    executor=in_process_executor,
)
