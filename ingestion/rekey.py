"""Rewrite stored customer ids under the installation's current customer-id key.

`customer_id` is a keyed hash of the E.164 phone (`ingestion.identity`). Data loaded
under another key — before keyed ids existed (a plain SHA-256), or before
`revisit init --rotate` gave the installation a new key — holds ids that no longer match
what the next load computes. `migrate_customer_ids(client, key)` rewrites them:

- tables that hold the phone next to the id get the id recomputed from the phone
  (`raw.crm_customers`, `raw.partner_events`, `raw.message_sends`, and the activation
  logs `activation.message_log` / `accrual_log`);
- ids stored without a phone are translated old → new through those pairs: the CRM's
  customer key where it was derived from the phone (`derive: from_phone`, which equals
  the customer's id; also in `raw.crm_appointments`), `ml.revisit_scores`,
  `ml.uplift_scores`, and the append-only point-in-time histories
  (`intermediate.int_customer_consent_history`, `int_appointment_versions`), which no
  full refresh rebuilds.

Each table is rewritten into a copy that then replaces it (`EXCHANGE TABLES`), so key
columns can change and a crash leaves either the old or the new table. Rerunning is
safe: ids already under the key map to themselves. The marts are derived: rebuild them
afterwards with `dbt build --full-refresh` (`revisit migrate customer-ids` does).
Speed: each distinct phone is hashed once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from clickhouse_connect.driver.client import Client

from ingestion.identity import customer_id

# (database.table, column with the id, how it is recomputed): "phone" from phone_e164,
# "old" through the old → new translation of ids seen next to a phone.
REKEYED: tuple[tuple[str, str, str], ...] = (
    ("raw.crm_customers", "customer_id", "phone"),
    ("raw.crm_customers", "source_customer_id", "old"),
    ("raw.crm_appointments", "source_customer_id", "old"),
    ("raw.partner_events", "customer_id", "phone"),
    ("raw.message_sends", "customer_id", "phone"),
    ("activation.message_log", "customer_id", "phone"),
    ("activation.accrual_log", "customer_id", "phone"),
    ("ml.revisit_scores", "customer_id", "old"),
    ("ml.uplift_scores", "customer_id", "old"),
    # The point-in-time histories keep versions raw has merged away and never rebuild
    # (full_refresh=false), so the marts' --full-refresh would leave their old ids behind.
    ("intermediate.int_customer_consent_history", "customer_id", "old"),
    ("intermediate.int_customer_consent_history", "source_customer_id", "old"),
    ("intermediate.int_appointment_versions", "source_customer_id", "old"),
)
_PHONE_MAP = "raw._rekey_by_phone"
_OLD_MAP = "raw._rekey_by_old_id"


@dataclass
class RekeyReport:
    phones: int = 0  # distinct phones hashed
    changed: dict[str, int] = field(default_factory=dict)  # table.column → rows whose id changed

    @property
    def total_changed(self) -> int:
        return sum(self.changed.values())


def _exists(client: Client, table: str) -> bool:
    database, name = table.split(".")
    return bool(
        client.command(
            "SELECT count() FROM system.tables WHERE database = {d:String} AND name = {n:String}",
            parameters={"d": database, "n": name},
        )
    )


def _expression(column: str, how: str) -> str:
    # joinGet gives '' for a key the map lacks (a new id is never ''): keep the value then.
    if how == "phone":
        return f"coalesce(nullIf(joinGet('{_PHONE_MAP}', 'new_id', phone_e164), ''), {column})"
    return f"coalesce(nullIf(joinGet('{_OLD_MAP}', 'new_id', {column}), ''), {column})"


def migrate_customer_ids(client: Client, key: bytes) -> RekeyReport:
    """Rewrite every stored customer id as `customer_id(phone, key)` (see the module doc)."""
    present = [(t, c, h) for t, c, h in REKEYED if _exists(client, t)]
    pairs = [
        client.query_df(
            f"SELECT DISTINCT {column} AS old_id, phone_e164 FROM {table} WHERE phone_e164 != ''"
        )
        for table, column, how in present
        if how == "phone"
    ]
    pairs_frame = pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame()
    report = RekeyReport()
    if pairs_frame.empty:
        return report
    phones = pd.Series(pairs_frame["phone_e164"].unique(), dtype=object)
    report.phones = len(phones)
    by_phone = pd.DataFrame({"phone": phones, "new_id": customer_id(phones, key)})
    old = pairs_frame.merge(by_phone, left_on="phone_e164", right_on="phone")
    by_old = old[["old_id", "new_id"]].drop_duplicates("old_id")
    for name in (_PHONE_MAP, _OLD_MAP):
        client.command(f"DROP TABLE IF EXISTS {name}")
    client.command(
        f"CREATE TABLE {_PHONE_MAP} (phone String, new_id String) ENGINE = Join(ANY, LEFT, phone)"
    )
    client.command(
        f"CREATE TABLE {_OLD_MAP} (old_id String, new_id String) ENGINE = Join(ANY, LEFT, old_id)"
    )
    try:
        client.insert_df(_PHONE_MAP, by_phone)
        client.insert_df(_OLD_MAP, by_old)
        for table in dict.fromkeys(t for t, _, _ in present):
            columns = {c: _expression(c, h) for t, c, h in present if t == table}
            report.changed.update(_rewrite(client, table, columns))
    finally:
        for name in (_PHONE_MAP, _OLD_MAP):
            client.command(f"DROP TABLE IF EXISTS {name}")
    return report


def _rewrite(client: Client, table: str, columns: dict[str, str]) -> dict[str, int]:
    """`table` with `columns` replaced by their expressions, swapped in atomically."""
    changed = {
        f"{table}.{column}": int(client.command(f"SELECT countIf({column} != {expr}) FROM {table}"))
        for column, expr in columns.items()
    }
    if not any(changed.values()):
        return changed
    copy = f"{table}__rekey"
    replace = ", ".join(f"{expr} AS {column}" for column, expr in columns.items())
    client.command(f"DROP TABLE IF EXISTS {copy}")
    client.command(f"CREATE TABLE {copy} AS {table}")
    client.command(f"INSERT INTO {copy} SELECT * REPLACE ({replace}) FROM {table}")
    client.command(f"EXCHANGE TABLES {table} AND {copy}")
    client.command(f"DROP TABLE {copy}")
    return changed
