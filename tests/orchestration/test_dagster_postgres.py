"""Dagster on PostgreSQL: the deployment instance config (`deploy/dagster/dagster.yaml`,
dagster-postgres run/event/schedule storage) against the throwaway PostgreSQL 15 cluster.

A small job materializes through an instance built from that file; the run, its events
and the materialization are then read back by a second instance (as the webserver or the
daemon would, in another process) and straight from PostgreSQL's tables.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    MaterializeResult,
    asset,
    materialize,
)
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage
from sqlalchemy import create_engine, make_url, text

from revisit.settings import PROJECT_ROOT
from tests.postgres import PostgresCluster

TEMPLATE = PROJECT_ROOT / "deploy" / "dagster" / "dagster.yaml"


@asset
def visits_seen() -> MaterializeResult:
    return MaterializeResult(metadata={"rows": 3})


@asset(deps=[visits_seen])
def visits_counted() -> MaterializeResult:
    return MaterializeResult(metadata={"rows": 1})


@pytest.fixture
def dagster_home(
    postgres_cluster: PostgresCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, str]:
    """A Dagster home holding the template, its variables pointing at a new database."""
    dsn = postgres_cluster.create_database()
    url = make_url(dsn)
    monkeypatch.setenv("DAGSTER_PG_HOST", url.host or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(url.port))
    monkeypatch.setenv("DAGSTER_PG_USER", url.username or "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")  # the test cluster trusts local users
    monkeypatch.setenv("DAGSTER_PG_DB", url.database or "")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(TEMPLATE, home / "dagster.yaml")
    return home, dsn


def test_a_job_materializes_and_reads_back_from_postgres(dagster_home: tuple[Path, str]) -> None:
    home, dsn = dagster_home
    with DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        result = materialize([visits_seen, visits_counted], instance=instance)
        assert result.success
        run_id = result.run_id

    # A second instance on the same config: everything it sees came from PostgreSQL.
    with DagsterInstance.from_config(str(home)) as reader:
        run = reader.get_run_by_id(run_id)
        assert run is not None and run.status == DagsterRunStatus.SUCCESS
        events = [e.dagster_event_type for e in reader.all_logs(run_id) if e.is_dagster_event]
        assert events.count(DagsterEventType.ASSET_MATERIALIZATION) == 2
        assert events[-1] == DagsterEventType.RUN_SUCCESS
        latest = reader.get_latest_materialization_event(AssetKey("visits_counted"))
        assert latest is not None and latest.run_id == run_id
        assert latest.asset_materialization.metadata["rows"].value == 1

    engine = create_engine(dsn)
    try:
        with engine.connect() as conn:
            status = conn.execute(
                text("SELECT status FROM runs WHERE run_id = :r"), {"r": run_id}
            ).scalar_one()
            materializations = conn.execute(
                text(
                    "SELECT count(*) FROM event_logs WHERE run_id = :r "
                    "AND dagster_event_type = 'ASSET_MATERIALIZATION'"
                ),
                {"r": run_id},
            ).scalar_one()
    finally:
        engine.dispose()
    assert (status, materializations) == ("SUCCESS", 2)
