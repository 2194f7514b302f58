"""Every dbt model is an asset (group = its folder), every dbt test an asset check.

Other domains name dbt models only through this module: `model_key("<model>")` and
`exposure_keys("<exposure>")` look them up in the dbt manifest, so a model that is
renamed or removed fails when the definitions load, not silently at run time.
"""

import json
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from dagster import AssetExecutionContext, AssetKey, Config
from dagster_dbt import (
    DagsterDbtTranslator,
    DbtCliResource,
    DbtProject,
    dbt_assets,
    get_asset_key_for_model,
)

from orchestration.resources import WarehouseResource
from revisit.settings import get_settings
from warehouse.dbt_runner import DBT_EXECUTABLE, dbt_environment, ensure_manifest, target_path

DBT = get_settings().dbt()

DBT_PROJECT = DbtProject(
    project_dir=DBT.project_dir,
    profiles_dir=DBT.profiles_dir,
    target_path=target_path(DBT),
    target=DBT.target,
)
MANIFEST = ensure_manifest(DBT)


class RevisitTranslator(DagsterDbtTranslator):
    """Groups models by layer (`staging`, `intermediate`, `marts`) and keys them as
    `<database>/<model>`; sources take the key their YAML gives (`raw/<table>`, the key
    of the ingestion asset that writes the table)."""

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


@dbt_assets(manifest=MANIFEST, project=DBT_PROJECT, dagster_dbt_translator=RevisitTranslator())
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


# --- keys of dbt models, from the manifest -----------------------------------------------


def model_key(name: str) -> AssetKey:
    """The asset key of a dbt model, seed or snapshot; KeyError when the manifest has none."""
    return get_asset_key_for_model([dbt_models], name)


@cache
def _manifest() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def exposure_models(exposure: str) -> list[str]:
    """Names of the models (and seeds) a dbt exposure depends on: what that consumer
    outside dbt reads. KeyError when the manifest has no such exposure."""
    manifest = _manifest()
    found = [e for e in manifest.get("exposures", {}).values() if e["name"] == exposure]
    if not found:
        known = sorted(e["name"] for e in manifest.get("exposures", {}).values())
        raise KeyError(f"no dbt exposure {exposure!r} in {MANIFEST} (exposures: {known})")
    names = []
    for unique_id in found[0]["depends_on"]["nodes"]:
        node = manifest["nodes"].get(unique_id)
        if node is None:
            raise KeyError(
                f"dbt exposure {exposure!r} depends on {unique_id}, which is not a model, "
                "seed or snapshot: consumers outside dbt read models"
            )
        names.append(node["name"])
    return names


def exposure_keys(exposure: str) -> list[AssetKey]:
    """Asset keys of the models a dbt exposure depends on (see `exposure_models`)."""
    return [model_key(name) for name in exposure_models(exposure)]
