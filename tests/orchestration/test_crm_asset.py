"""The Dagster `crm` asset with an unreachable CRM API (issue #15): the file drops still
load, then the run fails with the API's URL and setting named (no RUN_SUCCESS)."""

from __future__ import annotations

import shutil
import socket

import pytest
from dagster import materialize

import warehouse
from ingestion.crm.mapping import EXAMPLE_FIELD_MAPS
from orchestration.defs.ingestion.assets import crm
from orchestration.resources import WarehouseResource
from revisit.settings import Settings
from simulation.ru_salon_export import write_salon_export


def test_unreachable_api_loads_the_files_then_fails(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_salon_export(settings.source_dir / "crm" / "exports", business_id="salon", customers=5)
    settings.field_maps_dir.mkdir(parents=True)
    shutil.copy(EXAMPLE_FIELD_MAPS / "ru_salon.yaml", settings.field_maps_dir / "salon.yaml")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("REVISIT_CRM_API_URL", url)
    result = materialize(
        [crm], resources={"warehouse": WarehouseResource(dsn=settings.warehouse_dsn)},
        raise_on_error=False,
    )  # fmt: skip
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    text = str(failure.event_specific_data.error)
    assert f"CRM API at {url} (set by REVISIT_CRM_API_URL) cannot be reached" in text
    with warehouse.connect(settings.warehouse_dsn) as client:
        assert client.command("SELECT count() FROM raw.crm_customers FINAL") == 5
        assert client.command("SELECT count() FROM raw.crm_appointments FINAL") == 14
