"""dbt jobs."""

from dagster import AssetSelection, define_asset_job

from orchestration.defs.models.assets import dbt_models

build_models = define_asset_job(
    "build_models",
    selection=AssetSelection.assets(dbt_models),
    description="dbt build of every model (incremental facts pick up what is new).",
)

JOBS = [build_models]
