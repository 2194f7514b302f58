"""The Dagster code location loads per domain, keys come from the dbt manifest, the
planning jobs and schedules come from the trigger specs, and a CLI run materialises."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from dagster import AssetKey, Definitions

from activation.trigger_specs import load_triggers, planning_jobs
from revisit.settings import PROJECT_ROOT, Settings
from tests.conftest import VENV_BIN

# Names of today's jobs, schedules and sensors (README, Dagster section).
JOBS = {"revisit_main", "ingest_crm", "ingest_webhooks", "ingest_partners", "build_models",
        "plan_birthdays", "plan_reminders", "plan_weekly", "plan_cashback", "deliver"}  # fmt: skip
SCHEDULES = {
    "crm_hourly": "5 * * * *",
    "webhook_topic_every_minute": "* * * * *",
    "models_nightly": "30 2 * * *",
    "birthdays_daily": "15 0 * * *",
    "reminders_every_15_min": "*/15 * * * *",
    "offers_weekly": "0 3 * * 1",
    "cashback_daily": "30 4 * * *",
    "deliver_every_5_min": "*/5 * * * *",
}
SENSORS = {"spool_segments", "partner_files", "failing_deliveries"}


def test_definitions_load_with_lineage_and_checks() -> None:
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    # dbt models are keyed `<database>/<model>`, raw tables `raw/<table>`.
    assert {"raw/crm_appointments", "staging/stg_crm__appointments", "marts/fct_visits"} <= keys
    assert (
        AssetKey(["raw", "crm_appointments"])
        in graph.get(AssetKey(["staging", "stg_crm__appointments"])).parent_keys
    )
    assert graph.get(AssetKey(["marts", "fct_visits"])).group_name == "marts"
    # dbt tests are asset checks; the domains' own checks are there too.
    checks = {key.name for key in graph.asset_check_keys}
    assert any(name.startswith("unique_fct_visits") for name in checks)
    assert {"quarantine_rate", "roc_auc_not_below_promoted", "accruals_reconciled",
            "delivery_failures"} <= checks  # fmt: skip
    assert {job.name for job in defs.jobs} == JOBS
    assert {s.name: s.cron_schedule for s in defs.schedules} == SCHEDULES
    assert {s.name for s in defs.sensors} == SENSORS
    # The nodes the demo and the tests configure by name.
    main = defs.resolve_job_def("revisit_main")
    assert {"crm", "dbt_models", "revisit_ml", "uplift_scores", "activation", "cashback_accruals",
            "deliveries"} <= {node.name for node in main.nodes}  # fmt: skip


def test_each_domain_brings_its_own_definitions() -> None:
    from orchestration.definitions import DOMAINS

    assert list(DOMAINS) == ["ingestion", "models", "ml", "activation"]
    owned = {name: {job.name for job in d.jobs or []} for name, d in DOMAINS.items()}
    assert owned["ingestion"] == {"ingest_crm", "ingest_webhooks", "ingest_partners"}
    assert owned["models"] == {"build_models"}
    assert "deliver" in owned["activation"]
    for domain in DOMAINS.values():
        assert isinstance(domain, Definitions)
        assert domain.executor is None  # one executor, set once for the code location


def test_every_trigger_spec_has_its_job_and_schedule() -> None:
    from orchestration.definitions import defs
    from orchestration.defs.activation.assets import trigger_key

    specs = load_triggers()
    assert all(spec.schedule is not None for spec in specs), "every shipped trigger is scheduled"
    schedules = {s.name: s for s in defs.schedules}
    for spec in specs:
        job = defs.resolve_job_def(spec.schedule.job)
        assert trigger_key(spec.name) in job.asset_layer.executable_asset_keys, spec.name
        assert job.run_config == {"ops": {"activation": {"config": {"dry_run": False}}}}
        schedule = schedules[spec.schedule.name or f"{spec.schedule.job}_schedule"]
        assert schedule.job_name == spec.schedule.job
        assert schedule.cron_schedule == spec.schedule.cron
        assert schedule.execution_timezone == spec.schedule.timezone
    # A planning job plans exactly its triggers: priorities and caps resolve across them.
    for planning in planning_jobs(specs):
        planned = defs.resolve_job_def(planning.name).asset_layer.executable_asset_keys
        assert planned == {trigger_key(t) for t in planning.triggers}


def test_asset_deps_on_dbt_models_resolve_to_manifest_keys() -> None:
    from orchestration.definitions import defs
    from orchestration.defs.models.assets import (
        MANIFEST,
        dbt_models,
        exposure_models,
        model_key,
    )

    graph = defs.resolve_asset_graph()
    # No dependency points at a key nothing produces (a mistyped key would silently
    # become an external asset).
    assert not graph.external_asset_keys
    assert graph.get_all_asset_keys() == graph.materializable_asset_keys

    manifest = json.loads(MANIFEST.read_text())
    dbt_keys = set(dbt_models.keys)
    consumers = {
        "revisit_model": [AssetKey(["ml", "revisit_features"])],
        "activation_planner": [AssetKey(["activation", s.name]) for s in load_triggers()],
        "activation_delivery": [AssetKey(["activation", "deliveries"])],
    }
    for exposure, assets in consumers.items():
        models = exposure_models(exposure)
        expected = {model_key(m) for m in models}
        assert models and expected <= dbt_keys
        exposed = next(e for e in manifest["exposures"].values() if e["name"] == exposure)
        assert {manifest["nodes"][n]["name"] for n in exposed["depends_on"]["nodes"]} == set(models)
        for key in assets:
            assert graph.get(key).parent_keys & dbt_keys == expected, (exposure, key)
    # Every dbt source table is the raw table an ingestion asset writes.
    source_keys = {
        key for key in graph.get_all_asset_keys() if graph.get(key).child_keys & dbt_keys
    } - dbt_keys
    ingestion = {key for key in source_keys if graph.get(key).group_name == "ingestion"}
    # (9 raw tables and raw/quarantine, which every connector writes its rejects to)
    assert source_keys == ingestion and len(ingestion) == 10


def test_a_model_missing_from_the_manifest_fails_loudly() -> None:
    from orchestration.defs.models.assets import exposure_keys, model_key

    with pytest.raises(KeyError, match="no_such_model"):
        model_key("no_such_model")
    with pytest.raises(KeyError, match="no dbt exposure 'no_such_consumer'"):
        exposure_keys("no_such_consumer")


@pytest.mark.slow
def test_dagster_asset_materialize_cli(settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVISIT_")}
    env["REVISIT_DATA_DIR"] = str(settings.data_dir)
    result = subprocess.run(
        [str(VENV_BIN / "dagster"), "asset", "materialize", "-m", "orchestration.definitions",
         "--select", "staging/stg_crm__businesses"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RUN_SUCCESS" in result.stderr
