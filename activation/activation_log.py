"""The activation log back into ClickHouse: every outbox row's latest state.

`activation.message_log` and `activation.accrual_log` are ReplacingMergeTree(_version)
ordered by `idempotency_key`; `_version` is the outbox row's own version (bumped on every
change), so logging the same rows again is idempotent and a later state replaces an earlier
one. Read them with FINAL (or argMax by _version). Holdout rows are logged as state
`skipped`, reason `holdout`, holdout = 1 — the control group of the lift models.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from activation.outbox import Outbox, utcnow

MESSAGE_LOG_DDL = """
CREATE TABLE IF NOT EXISTS activation.message_log (
    idempotency_key String,
    campaign_id String,
    trigger LowCardinality(String),
    business_id String,
    customer_id String,
    phone_e164 String,
    channel LowCardinality(String),
    recipient String,
    template String,
    offer_id Nullable(String),
    holdout UInt8,
    state LowCardinality(String),
    reason Nullable(String),
    attempts UInt32,
    provider Nullable(String),
    provider_message_id Nullable(String),
    error_code Nullable(String),
    last_error Nullable(String),
    send_at DateTime64(3, 'UTC'),
    expires_at DateTime64(3, 'UTC'),
    created_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC'),
    sent_at Nullable(DateTime64(3, 'UTC')),
    logged_at DateTime64(3, 'UTC'),
    _version UInt64
) ENGINE = ReplacingMergeTree(_version) ORDER BY idempotency_key
"""

ACCRUAL_LOG_DDL = """
CREATE TABLE IF NOT EXISTS activation.accrual_log (
    idempotency_key String,
    campaign_id String,
    business_id String,
    customer_id String,
    phone_e164 String,
    amount Decimal(18, 2),
    currency LowCardinality(String),
    source_event_id String,
    state LowCardinality(String),
    reason Nullable(String),
    attempts UInt32,
    provider Nullable(String),
    ledger_entry_id Nullable(String),
    error_code Nullable(String),
    last_error Nullable(String),
    created_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC'),
    sent_at Nullable(DateTime64(3, 'UTC')),
    logged_at DateTime64(3, 'UTC'),
    _version UInt64
) ENGINE = ReplacingMergeTree(_version) ORDER BY idempotency_key
"""

MESSAGE_COLUMNS = [
    "idempotency_key", "campaign_id", "trigger", "business_id", "customer_id", "phone_e164",
    "channel", "recipient", "template", "offer_id", "holdout", "state", "reason", "attempts",
    "provider", "provider_message_id", "error_code", "last_error", "send_at", "expires_at",
    "created_at", "updated_at", "sent_at", "logged_at", "_version",
]  # fmt: skip
ACCRUAL_COLUMNS = [
    "idempotency_key", "campaign_id", "business_id", "customer_id", "phone_e164", "amount",
    "currency", "source_event_id", "state", "reason", "attempts", "provider",
    "ledger_entry_id", "error_code", "last_error", "created_at", "updated_at", "sent_at",
    "logged_at", "_version",
]  # fmt: skip


def ensure_log_tables(client: Any) -> None:
    client.command("CREATE DATABASE IF NOT EXISTS activation")
    client.command(MESSAGE_LOG_DDL)
    client.command(ACCRUAL_LOG_DDL)


def _message_row(r: dict[str, Any], logged_at: datetime) -> list[Any]:
    p = r["payload"]
    return [
        r["idempotency_key"], r["campaign_id"], r["trigger"], r["business_id"],
        r["customer_id"], p.get("phone_e164", ""), r["channel"], r["recipient"],
        p.get("template", ""), p.get("offer_id"), int(bool(r["holdout"])), r["state"],
        r["reason"], r["attempts"], r["provider"], r["provider_message_id"], r["error_code"],
        r["last_error"], r["send_at"], r["expires_at"], r["created_at"], r["updated_at"],
        r["sent_at"], logged_at, r["version"],
    ]  # fmt: skip


def _accrual_row(r: dict[str, Any], logged_at: datetime) -> list[Any]:
    p = r["payload"]
    return [
        r["idempotency_key"], r["campaign_id"], r["business_id"], r["customer_id"],
        p.get("phone_e164", ""), Decimal(r["amount"]), r["currency"], r["source_event_id"],
        r["state"], r["reason"], r["attempts"], r["provider"], r["ledger_entry_id"],
        r["error_code"], r["last_error"], r["created_at"], r["updated_at"], r["sent_at"],
        logged_at, r["version"],
    ]  # fmt: skip


def log_to_warehouse(client: Any, outbox: Outbox, since: datetime | None = None) -> dict[str, Any]:
    """Append outbox rows changed since `since` (all if None) to the activation log tables.

    Creates `activation.message_log` / `activation.accrual_log` if missing. Returns
    `{"message_log": rows, "accrual_log": rows, "until": <updated_at high-water mark>}`;
    pass `until` as the next `since` (re-logging a row is harmless).
    """
    ensure_log_tables(client)
    logged_at = utcnow()
    out: dict[str, Any] = {"until": since}
    for kind, table, columns, to_row in (
        ("message", "activation.message_log", MESSAGE_COLUMNS, _message_row),
        ("accrual", "activation.accrual_log", ACCRUAL_COLUMNS, _accrual_row),
    ):
        rows = outbox.rows(kind, since=since)  # type: ignore[arg-type]
        if rows:
            client.insert(table, [to_row(r, logged_at) for r in rows], column_names=columns)
            high = max(r["updated_at"] for r in rows)
            out["until"] = high if out["until"] is None else max(out["until"], high)
        out[table.split(".")[1]] = len(rows)
    return out
