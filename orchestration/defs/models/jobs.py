"""dbt jobs.

A job selecting the dbt assets also runs the checks on them: the dbt tests (inside the
dbt step) and the Great Expectations checks on staging (checks.py, a step after it)."""

from dagster import AssetSelection, define_asset_job

from orchestration.defs.models.assets import dbt_models

build_models = define_asset_job(
    "build_models",
    selection=AssetSelection.assets(dbt_models),
    description="dbt build of every model (incremental facts pick up what is new), then the "
    "Great Expectations checks on the staging models.",
)

JOBS = [build_models]
