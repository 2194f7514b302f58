"""The Great Expectations checks on the staging models: wired into the dbt jobs after the
build, and run in Dagster on real staging views (a planted bad row fails at ERROR with
the expectation named; Data Docs linked and under the data directory)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest
from dagster import AssetCheckKey, AssetSelection, Definitions, define_asset_job

import warehouse
from ingestion.gx_checks import STAGING_SUITES
from orchestration.resources import WarehouseResource
from revisit.settings import Settings
from warehouse.dbt_runner import run_dbt
from warehouse.load import prepare_raw

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_every_staging_model_has_a_gx_check_run_after_the_build() -> None:
    from orchestration.definitions import defs
    from orchestration.defs.models.assets import model_key
    from orchestration.defs.models.checks import GX_CHECK

    checks = defs.resolve_asset_graph().asset_check_keys
    for spec in STAGING_SUITES:
        assert AssetCheckKey(model_key(spec.table), GX_CHECK) in checks, spec.table
    for job_name in ("build_models", "revisit_main"):
        job = defs.resolve_job_def(job_name)
        upstream = job.graph.dependency_structure.input_to_upstream_outputs_for_node(
            "staging_great_expectations"
        )
        assert {out.node_name for outs in upstream.values() for out in outs} == {"dbt_models"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Staging views built by dbt over raw CRM rows that passed ingestion's checks;
    REVISIT_DATA_DIR points at the data directory while the module runs."""
    data_dir = tmp_path_factory.mktemp("gx-checks") / "data"
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("REVISIT_")}
    os.environ["REVISIT_DATA_DIR"] = str(data_dir)
    try:
        settings = Settings()
        with warehouse.connect(settings.warehouse_dsn) as client:
            prepare_raw(client)
            client.insert_df("raw.crm_appointments", _appointments("a1", "completed"))
        run_dbt(["run", "--select", "staging"], settings.dbt(), capture=True)
        yield settings
    finally:
        os.environ.pop("REVISIT_DATA_DIR", None)
        os.environ.update(saved)


def _appointments(appointment_id: str, status: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "business_id": ["b1"],
            "appointment_id": [appointment_id],
            "source_customer_id": ["c1"],
            "status": [status],
            "scheduled_at": [NOW],
            "currency": ["EUR"],
            "created_at": [NOW],
            "updated_at": [NOW],
            "_version": [1],
        }
    )


def _run_checks(settings: Settings) -> dict[str, object]:
    """Only the GX checks (the staging views exist already), as `build_models` runs them."""
    from orchestration.defs.models import defs as models
    from orchestration.defs.models.checks import staging_great_expectations

    defs = Definitions.merge(
        models,
        Definitions(
            jobs=[
                define_asset_job(
                    "gx_only", selection=AssetSelection.checks(staging_great_expectations)
                )
            ],
            resources={"warehouse": WarehouseResource(dsn=settings.warehouse_dsn)},
        ),
    )
    job = defs.resolve_job_def("gx_only")
    assert [node.name for node in job.nodes] == ["staging_great_expectations"]
    result = job.execute_in_process(raise_on_error=False)
    assert result.success
    return {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}


@pytest.mark.slow
def test_clean_staging_passes_and_a_planted_bad_row_fails_at_error(built: Settings) -> None:
    evaluations = _run_checks(built)
    assert set(evaluations) == {spec.table for spec in STAGING_SUITES}
    assert all(e.passed for e in evaluations.values()), {
        t: e.metadata for t, e in evaluations.items() if not e.passed
    }
    clean = evaluations["stg_crm__appointments"]
    assert clean.metadata["rows_total"].value == 1
    assert clean.metadata["expectations_failed"].value == 0
    page = Path(urlparse(clean.metadata["data_docs"].value).path)
    index = built.data_dir / "gx" / "data_docs" / "local_site" / "index.html"
    assert page.is_file() and page.is_relative_to(index.parent) and index.is_file()

    # A row written straight into raw (bypassing ingestion) shows in the staging view.
    with warehouse.connect(built.warehouse_dsn) as client:
        client.insert_df("raw.crm_appointments", _appointments("a2", "done"))
    evaluations = _run_checks(built)
    failed = evaluations["stg_crm__appointments"]
    assert not failed.passed
    assert failed.severity.value == "ERROR"
    assert failed.metadata["expectations_failed"].value == 1
    text = failed.metadata["failed_expectations"].value
    assert "expect_column_values_to_be_in_set(status)" in text and "'done'" in text
    assert (
        failed.metadata["unexpected_counts"].value["expect_column_values_to_be_in_set(status)"] == 1
    )
    assert Path(urlparse(failed.metadata["data_docs"].value).path).is_file()
    assert all(e.passed for t, e in evaluations.items() if t != "stg_crm__appointments")
