"""A temporary embedded warehouse with the planner's input tables, and fixture builders.

The input tables are created from their owners' single descriptions: the marts of the dbt
exposure `activation_planner` from their dbt contracts (`warehouse.contracts`),
`ml.revisit_scores` from ml.contract, `activation.message_log` from activation_log.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import warehouse
from activation.activation_log import ensure_log_tables
from activation.trigger_specs import parse_trigger
from ml.contract import SCORES_TABLE, ensure_scores_table
from warehouse import contracts

Client = warehouse.Client


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


CUSTOMER_DEFAULTS: dict[str, Any] = {
    "phone_e164": "",
    "full_name": "Анна Петрова",
    "birthday": None,
    "gender": "f",
    "business_kind": "salon",
    "timezone": "Europe/Berlin",
    "currency": "EUR",
    "consent_marketing": True,
    "opted_out": False,
    "opted_out_at": None,
    "contactable": None,
    "created_at": utc(2025, 1, 1),
    "first_visit_at": utc(2025, 2, 1),
    "last_visit_at": utc(2025, 6, 1),
    "visits": 3,
    "revenue": Decimal("100.00"),
    "next_appointment_at": None,
}


class Fixtures:
    """Collects rows per table; `flush()` inserts them."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.rows: dict[str, list[dict[str, Any]]] = {}

    def add(self, table: str, **row: Any) -> dict[str, Any]:
        self.rows.setdefault(table, []).append(row)
        return row

    def customer(self, business_id: str, customer_id: str, **kw: Any) -> dict[str, Any]:
        row = {"business_id": business_id, "customer_id": customer_id, **CUSTOMER_DEFAULTS}
        row["phone_e164"] = "+4915" + str(abs(hash(customer_id)) % 10**9).zfill(9)
        row.update(kw)
        if row["contactable"] is None:
            row["contactable"] = row["consent_marketing"] and not row["opted_out"]
        return self.add("marts.dim_customers", **row)

    def rfm(self, business_id: str, customer_id: str, segment: str, **kw: Any) -> None:
        row = {
            "business_id": business_id,
            "customer_id": customer_id,
            "as_of_date": date(2026, 3, 1),
            "last_visit_at": utc(2025, 11, 1),
            "recency_days": 120,
            "frequency": 3,
            "monetary": Decimal("90.00"),
            "r_score": 1,
            "f_score": 2,
            "m_score": 2,
            "rfm_cell": "R1F2M2",
            "segment": segment,
        }
        row.update(kw)
        self.add("marts.customer_rfm", **row)

    def appointment(
        self, business_id: str, appointment_id: str, customer_id: str, at: datetime, **kw: Any
    ) -> None:
        row = {
            "appointment_key": f"{business_id}:{appointment_id}",
            "business_id": business_id,
            "appointment_id": appointment_id,
            "customer_id": customer_id,
            "location_id": "L1",
            "service_id": "S1",
            "status": "scheduled",
            "scheduled_at": at,
            "amount": None,
            "currency": "EUR",
            "offer_id": None,
            "created_at": utc(2026, 1, 1),
            "updated_at": utc(2026, 1, 1),
        }
        row.update(kw)
        self.add("marts.fct_appointments", **row)

    def flush(self) -> None:
        for table, rows in self.rows.items():
            cols = list(rows[0])
            self.client.insert(table, [[r[c] for c in cols] for r in rows], column_names=cols)
        self.rows.clear()


MARTS = contracts.exposure_tables("activation_planner")
INPUT_TABLES = [*MARTS, SCORES_TABLE, "activation.message_log"]


def create_input_tables(client: Client) -> None:
    """Every planner input, empty where missing."""
    contracts.create_tables(client, MARTS)
    ensure_scores_table(client)
    ensure_log_tables(client)


@pytest.fixture(scope="module")
def module_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    path: Path = tmp_path_factory.mktemp("planner_wh")
    with warehouse.connect(f"chdb://{path}") as client:
        create_input_tables(client)
        yield client


@pytest.fixture
def client(module_client: Client) -> Iterator[Client]:
    """The module's warehouse with empty input tables and no plan table."""
    create_input_tables(module_client)
    for name in INPUT_TABLES:
        module_client.command(f"TRUNCATE TABLE IF EXISTS {name}")
    module_client.command("DROP TABLE IF EXISTS activation.send_plan")
    yield module_client


@pytest.fixture
def fx(client: Client) -> Fixtures:
    return Fixtures(client)


def trigger(**overrides: Any):
    """A valid spec (birthday by default) with overrides, validated like a YAML file."""
    data: dict[str, Any] = {
        "name": "birthday_greeting",
        "kind": "birthday",
        "params": {"days_before": 0},
        "channels": ["whatsapp", "telegram", "sms"],
        "template": {"name": "bday", "text": "{first_name}, happy birthday {birthday_date}!"},
        "holdout_pct": 0,
        "frequency_cap": {"max_messages": 5, "per_days": 7},
        "quiet_hours": {"start": "21:00", "end": "09:00"},
        "send_at_local": "10:00",
        "priority": 10,
    }
    data.update(overrides)
    return parse_trigger(data, "test.yaml")
