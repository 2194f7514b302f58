"""Every dbt model is an asset (group = its folder), every dbt test an asset check."""

import json
from collections.abc import Iterator, Mapping
from typing import Any

from dagster import AssetExecutionContext, AssetKey, Config
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from orchestration.resources import WarehouseResource
from revisit.settings import get_settings
from warehouse.dbt_runner import DBT_EXECUTABLE, dbt_environment, ensure_manifest, target_path

SETTINGS = get_settings()
DBT = SETTINGS.dbt()

DBT_PROJECT = DbtProject(
    project_dir=DBT.project_dir,
    profiles_dir=DBT.profiles_dir,
    target_path=target_path(DBT),
    target=DBT.target,
)


class RevisitTranslator(DagsterDbtTranslator):
    """Groups models by layer (`staging`, `intermediate`, `marts`) and keys them as
    `<database>/<model>`, so `raw/crm_customers` from ingestion feeds `staging/...`."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] in ("model", "seed", "snapshot"):
            schema = dbt_resource_props["config"].get("schema") or "default"
            return AssetKey([schema, dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        if dbt_resource_props["resource_type"] == "model" and len(fqn) > 2:
            return fqn[1]
        return "marts" if dbt_resource_props["resource_type"] == "seed" else None


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(
        project_dir=DBT_PROJECT,
        profiles_dir=str(DBT.profiles_dir),
        target=DBT.target,
        dbt_executable=DBT_EXECUTABLE,
    )


class DbtBuildConfig(Config):
    as_of_date: str = ""
    """Date the marts are computed as of (YYYY-MM-DD); empty means today (UTC)."""


@dbt_assets(
    manifest=ensure_manifest(DBT),
    project=DBT_PROJECT,
    dagster_dbt_translator=RevisitTranslator(),
)
def dbt_models(
    context: AssetExecutionContext,
    config: DbtBuildConfig,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
) -> Iterator[Any]:
    """`dbt build` of the selected models: models, seeds and their tests."""
    with warehouse.get_client():
        pass  # creates the raw tables the sources point at; closed before dbt opens it
    with dbt_environment(DBT):
        args = ["build"]
        if config.as_of_date:
            args += ["--vars", json.dumps({"as_of_date": config.as_of_date})]
        yield from dbt.cli(args, context=context).stream()
