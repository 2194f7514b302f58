"""`dbt build` of the project on the embedded engine through the `chdb` adapter plugin."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest

import warehouse
from ingestion.identity import customer_ids
from revisit.settings import DEV_ID_KEY, Settings
from warehouse.dbt_runner import run_dbt
from warehouse.load import load_batch, prepare_raw

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)


def _customers() -> pd.DataFrame:
    phones = ["+79161234567", "+77011234567"]
    return pd.DataFrame(
        {
            "business_id": "b1",
            "source_customer_id": ["c1", "c2"],
            "customer_id": customer_ids(phones, DEV_ID_KEY),
            "phone_e164": phones,
            "phone_raw": ["8 (916) 123-45-67", "+7 701 123 45 67"],
            "full_name": ["Анна Иванова", "Aigerim S."],
            "birthday": [None, None],
            "gender": ["f", "f"],
            "consent_marketing": [True, False],
            "created_at": T0,
            "updated_at": T0,
        }
    )


def _appointments(rows: list[tuple[str, str, str, str | None, datetime]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "business_id": "b1",
            "appointment_id": [r[0] for r in rows],
            "source_customer_id": [r[1] for r in rows],
            "location_id": "l1",
            "service_id": "s1",
            "status": [r[2] for r in rows],
            "scheduled_at": [T0 + timedelta(days=i) for i in range(len(rows))],
            "amount": [Decimal(r[3]) if r[3] else None for r in rows],
            "currency": "RUB",
            "offer_id": None,
            "created_at": T0,
            "updated_at": [r[4] for r in rows],
        }
    )


def _load(settings: Settings, table: str, frame: pd.DataFrame, batch: str) -> None:
    with warehouse.connect(settings.warehouse_dsn) as client:
        prepare_raw(client)
        load_batch(client, table, frame, batch_id=batch, source="test")


def _query(settings: Settings, sql: str) -> list[tuple]:
    with warehouse.connect(settings.warehouse_dsn) as client:
        return client.query(sql).result_rows


@pytest.mark.slow
def test_dbt_build_view_table_incremental_and_tests(settings: Settings) -> None:
    businesses = pd.DataFrame(
        {"business_id": ["b1"], "name": ["Барбершоп"], "kind": ["barbershop"],
         "country": ["RU"], "city": ["Москва"], "timezone": ["Europe/Moscow"],
         "currency": ["RUB"], "updated_at": [T0]}
    )  # fmt: skip
    _load(settings, "crm_businesses", businesses, "biz")
    _load(settings, "crm_customers", _customers(), "cust")
    _load(
        settings,
        "crm_appointments",
        _appointments(
            [
                ("a1", "c1", "completed", "1500.00", T0),
                ("a2", "c1", "scheduled", None, T0),
                ("a3", "c2", "completed", "990.50", T0),
            ]
        ),
        "appt1",
    )
    run_dbt(["build"], settings.dbt(), capture=True)

    engines = dict(
        _query(
            settings,
            "SELECT database || '.' || name, engine FROM system.tables "
            "WHERE database IN ('staging', 'intermediate', 'marts')",
        )
    )
    assert engines["staging.stg_crm__appointments"] == "View"
    assert engines["marts.dim_customers"] == "MergeTree"
    assert engines["marts.fct_visits"] == "ReplacingMergeTree"
    assert _query(settings, "SELECT count() FROM marts.fct_visits") == [(2,)]

    # The scheduled appointment is completed later: the incremental run adds it once.
    later = T0 + timedelta(days=3)
    _load(
        settings,
        "crm_appointments",
        _appointments([("a2", "c1", "completed", "1200.00", later)]),
        "appt2",
    )
    run_dbt(["build", "--select", "fct_visits+"], settings.dbt(), capture=True)
    run_dbt(["build", "--select", "fct_visits+"], settings.dbt(), capture=True)
    visits = _query(
        settings,
        "SELECT customer_id, visits, toString(revenue) FROM marts.dim_customers "
        "ORDER BY visits DESC",
    )
    assert [(v, r) for _, v, r in visits] == [(2, "2700"), (1, "990.5")]
    assert _query(settings, "SELECT count() FROM marts.fct_visits FINAL") == [(3,)]

    # A full refresh rebuilds the same rows.
    run_dbt(["build", "--full-refresh", "--select", "fct_visits"], settings.dbt(), capture=True)
    assert _query(settings, "SELECT count(), sum(amount) FROM marts.fct_visits") == [
        (3, Decimal("3690.50"))
    ]

    # A data test that fails makes the build fail.
    _load(
        settings,
        "crm_appointments",
        _appointments([("a9", "c2", "teleported", None, later)]),
        "appt3",
    )
    with pytest.raises(subprocess.CalledProcessError) as failure:
        run_dbt(["build", "--select", "stg_crm__appointments"], settings.dbt(), capture=True)
    assert "accepted_values_stg_crm__appointments_status" in failure.value.stdout
