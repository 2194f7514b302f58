"""The data-loss ledger explains every row: on a generated ecosystem run end to end
(`revisit demo`), each source table's rows (its latest raw versions plus the rows
quarantined whole at load, counted here from the raw tables) equal the rows reaching
its mart plus the ledger's lost and merged rows for that mart. Then two CRM records of
one business are planted with one phone spelled two ways: the collision mart lists both,
and the ledger counts the second as merged, so the equation still holds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pandas as pd
import pytest

import warehouse
from revisit.settings import Settings
from tests.conftest import run_cli
from warehouse.load import load_batch

pytestmark = pytest.mark.slow

CUSTOMERS = 300

# source table → (the mart its rows reach, how many rows of the mart stand for them)
PRIMARY = {
    "crm_customers": ("dim_customers", "SELECT count() FROM marts.dim_customers"),
    "crm_appointments": ("fct_appointments", "SELECT count() FROM marts.fct_appointments"),
    "message_sends": ("fct_message_sends", "SELECT count() FROM marts.fct_message_sends"),
    # Money events reach the cashback ledger; the feed's other events (target actions)
    # are no cashback and reach no mart by design, so they count as arrived.
    "partner_events": (
        "cashback_ledger",
        "SELECT (SELECT count() FROM marts.cashback_ledger) + (SELECT count() FROM "
        "staging.stg_partners__events WHERE event_type NOT IN "
        "('accrual', 'reversal', 'redemption'))",
    ),
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    data_dir = tmp_path_factory.mktemp("data-loss") / "data"
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("REVISIT_")}
    os.environ["REVISIT_DATA_DIR"] = str(data_dir)
    try:
        settings = Settings()
        result = run_cli(["demo", "--customers", str(CUSTOMERS)], settings, timeout=900)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        # The summary shows the ledger, the collisions and the migration matrix.
        assert "Data-loss ledger" in result.stdout or "data loss: none" in result.stdout
        assert "phone collisions:" in result.stdout
        assert "segment migration" in result.stdout.lower()
        yield settings
    finally:
        os.environ.pop("REVISIT_DATA_DIR", None)
        os.environ.update(saved)


def received(client: warehouse.Client, table: str) -> int:
    """Rows the source table received: latest raw versions + distinct rows quarantined
    whole (a reason not ending "row kept"), counted from raw, not through the models."""
    raw = int(client.command(f"SELECT count() FROM raw.{table} FINAL"))
    quarantined = client.query_df(
        "SELECT source_kind, _source, row_ref, reason, raw_row FROM raw.quarantine FINAL "
        "WHERE source_table = {t:String}",
        parameters={"t": table},
    )
    if quarantined.empty:
        return raw
    whole = quarantined.groupby(["source_kind", "_source", "row_ref"]).reason.apply(
        lambda reasons: not reasons.str.endswith("value dropped, row kept").all()
    )
    return raw + int(whole.sum())


def check_ledger_explains_every_row(settings: Settings) -> dict[str, tuple[int, int, int]]:
    """Assert the equation per source table; return (received, reached, ledger) each."""
    figures = {}
    with warehouse.connect(settings.warehouse_dsn) as client:
        ledger = client.query_df("SELECT * FROM marts.data_loss")
        for table, (mart, reached_sql) in PRIMARY.items():
            total = received(client, table)
            reached = int(client.command(reached_sql))
            mine = ledger[
                (ledger.source_table == table)
                & (ledger.mart == mart)
                & ledger.outcome.isin(["lost", "merged"])
            ]
            explained = int(mine["rows"].sum())
            assert total == reached + explained, (table, total, reached, mine.to_dict("records"))
            if len(ledger[ledger.source_table == table]):
                assert set(ledger[ledger.source_table == table].source_rows) == {total}, table
            figures[table] = (total, reached, explained)
    return figures


def test_the_ledger_explains_every_missing_row(demo: Settings) -> None:
    figures = check_ledger_explains_every_row(demo)
    # The generator plants invalid phones: their customers and appointments are lost,
    # and the ledger says why.
    assert figures["crm_customers"][2] > 0 and figures["crm_appointments"][2] > 0
    with warehouse.connect(demo.warehouse_dsn) as client:
        reasons = set(
            client.query_df("SELECT reason FROM marts.data_loss WHERE outcome = 'lost'").reason
        )
    assert "customer quarantined at load" in reasons
    assert "quarantined at load: phone_e164" in reasons
    # Every SMS delivery report reaches the funnel (the gateway's id in `message_id`).
    with warehouse.connect(demo.warehouse_dsn) as client:
        missed = client.command(
            "SELECT sum(rows) FROM marts.data_loss WHERE source_table = 'messenger_events' "
            "AND stage = 'int_message_sends'"
        )
    assert int(missed or 0) == 0


def test_a_phone_collision_is_listed_and_counted_as_merged(demo: Settings) -> None:
    with warehouse.connect(demo.warehouse_dsn) as client:
        business, customer_id, phone = client.query(
            "SELECT business_id, customer_id, phone_e164 FROM raw.crm_customers FINAL "
            "ORDER BY business_id, source_customer_id LIMIT 1"
        ).result_rows[0]
        now = datetime(2026, 1, 1, tzinfo=UTC)
        twin = pd.DataFrame(
            {
                "business_id": [business],
                "source_customer_id": ["planted-twin"],
                "customer_id": [customer_id],
                "phone_e164": [phone],
                "phone_raw": ["8 " + phone[2:]],
                "full_name": ["Planted Twin"],
                "birthday": [None],
                "gender": [""],
                "consent_marketing": [False],
                "created_at": [now],
                "updated_at": [now],
            }
        )
        load_batch(client, "crm_customers", twin, batch_id="planted-twin", source="test")
    result = run_cli(
        ["dbt", "build", "--select", "stg_crm__customers", "dim_customers",
         "crm_phone_collisions", "data_loss"],
        demo,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    with warehouse.connect(demo.warehouse_dsn) as client:
        collisions = client.query_df(
            "SELECT * FROM marts.crm_phone_collisions WHERE business_id = {b:String} "
            "AND customer_id = {c:String}",
            parameters={"b": business, "c": customer_id},
        )
    assert "planted-twin" in set(collisions.source_customer_id)
    assert len(collisions) >= 2 and set(collisions.records) == {len(collisions)}
    assert collisions.describes_customer.sum() == 1
    figures = check_ledger_explains_every_row(demo)
    assert figures["crm_customers"][2] >= 1
