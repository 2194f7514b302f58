"""Reconciliation against marts.cashback_ledger and the activation log, on embedded chDB."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx

import warehouse
from activation.activation_log import log_to_warehouse
from activation.delivery import deliver
from activation.outbox import Outbox
from activation.reconcile import reconcile_accruals
from revisit.settings import Settings
from simulation.providers import StandinCluster

from .conftest import NOW, accrual, fast_config, message

MART_DDL = """
CREATE TABLE marts.cashback_ledger (
    entry_id String, partner_id String, source_event_id String, event_type String,
    customer_id String, phone_e164 String, amount Decimal(18, 2), currency String,
    occurred_at DateTime64(3, 'UTC'), offer_id Nullable(String)
) ENGINE = MergeTree ORDER BY entry_id
"""


def _mart_row(entry_id: str, amount: str, event_type: str = "accrual") -> list[object]:
    partner, event = entry_id.split(":")
    return [entry_id, partner, event, event_type, "c", "+79160000000", Decimal(amount), "RUB",
            NOW, None]  # fmt: skip


def test_reconcile_finds_missing_mismatched_and_duplicate_accruals(
    standins: StandinCluster, outbox: Outbox, settings: Settings
) -> None:
    # Ledger side: 0 and 1 match, 2 has another amount, 3 is not in the mart; 4 is only
    # planned (in flight), 5 is in the mart and was never planned.
    plans = [accrual(0), accrual(1), accrual(2, "50.00"), accrual(3)]
    outbox.enqueue(plans)
    deliver(outbox, fast_config(standins))
    outbox.enqueue([accrual(4)])
    mart = [
        _mart_row("P0001:ev000000", "12.30"), _mart_row("P0001:ev000001", "12.30"),
        _mart_row("P0001:ev000002", "5.00"), _mart_row("P0001:ev000004", "12.30"),
        _mart_row("P0001:ev000005", "7.00"), _mart_row("P0001:ev000009", "-3.00", "reversal"),
    ]  # fmt: skip
    with warehouse.connect(settings.warehouse_dsn) as client:
        client.command("CREATE DATABASE IF NOT EXISTS marts")
        client.command(MART_DDL)
        client.insert("marts.cashback_ledger", mart, column_names=[
            "entry_id", "partner_id", "source_event_id", "event_type", "customer_id",
            "phone_e164", "amount", "currency", "occurred_at", "offer_id"])  # fmt: skip
        # The ledger's own records (stand-in) plus a double accrual it should never hold.
        ledger = httpx.get(f"{standins.urls['ledger']}/v1/accruals").json()
        report = reconcile_accruals(client, outbox, ledger_entries=ledger)
        doubled = [*ledger, {**ledger[0], "id": "le_extra"}]
        from_ledger = reconcile_accruals(client, outbox, ledger_entries=doubled)

    assert report.matched == 2 and report.mart_entries == 5 and report.ledger_entries == 4
    assert [i.source_event_id for i in report.amount_mismatch] == ["P0001:ev000002"]
    assert report.amount_mismatch[0].ledger_amount == Decimal("50.00")
    assert [i.source_event_id for i in report.missing_in_mart] == ["P0001:ev000003"]
    missing = {i.source_event_id: i.outbox_state for i in report.missing_in_ledger}
    assert missing == {"P0001:ev000004": "planned", "P0001:ev000005": None}
    assert [i.source_event_id for i in report.in_flight] == ["P0001:ev000004"]
    assert not report.passed and not report.duplicates
    assert [d.ledger_entry_ids for d in from_ledger.duplicates] == [(ledger[0]["id"], "le_extra")]


def test_activation_log_is_idempotent_and_follows_state(
    standins: StandinCluster, outbox: Outbox, settings: Settings
) -> None:
    outbox.enqueue([message(2, holdout=True)], now=NOW - timedelta(hours=1))
    outbox.enqueue([message(1), accrual(1)])
    with warehouse.connect(settings.warehouse_dsn) as client:
        first = log_to_warehouse(client, outbox)
        assert (first["message_log"], first["accrual_log"]) == (2, 1)
        deliver(outbox, fast_config(standins))
        log_to_warehouse(client, outbox)
        again = log_to_warehouse(client, outbox, since=first["until"])
        assert again["message_log"] == 1  # only the row that changed (holdout did not)
        rows = client.query(
            "SELECT idempotency_key, state, reason, holdout, provider_message_id "
            "FROM activation.message_log FINAL ORDER BY holdout"
        ).result_rows
        accruals = client.query(
            "SELECT state, amount, ledger_entry_id FROM activation.accrual_log FINAL"
        ).result_rows
        raw_rows = client.query("SELECT count() FROM activation.message_log").result_rows[0][0]
    assert [(r[1], r[2], r[3]) for r in rows] == [("sent", None, 0), ("skipped", "holdout", 1)]
    assert rows[0][4].startswith("wamid.")
    assert accruals[0][0] == "sent" and accruals[0][1] == Decimal("12.30")
    assert accruals[0][2].startswith("le_")
    assert raw_rows >= 2
