"""The warehouse tables the ML code reads and writes.

Inputs (built by dbt in production; created here only for standalone warehouses such as
`revisit ml evaluate`'s temporary one, the benchmark and the tests):

- `marts.fct_visits` — one row per completed visit (ReplacingMergeTree, read with FINAL).
- `intermediate.int_appointments` — every appointment in every status, with `created_at`
  (a view in production; any table with these columns works, the feature SQL keeps the
  latest version of each appointment itself).
- `marts.dim_customers` — one row per (business_id, customer_id) with birthday and
  business kind.
- `intermediate.int_message_sends` — one row per trigger message with its funnel times.
- `marts.cashback_ledger` — partner money events per person (customer_id = phone hash,
  the same person across businesses).

Output: `ml.revisit_scores` — one row per (business_id, customer_id) per scoring run,
history kept; a run is (model_version, scored_at) and a rerun replaces its rows.
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

INPUT_TABLES: dict[str, str] = {
    "marts.fct_visits": """
        appointment_key String,
        business_id String,
        appointment_id String,
        customer_id String,
        location_id String,
        service_id String,
        visited_at DateTime64(3, 'UTC'),
        amount Decimal(18, 2),
        currency LowCardinality(String),
        offer_id Nullable(String),
        updated_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY (business_id, appointment_key)""",
    "intermediate.int_appointments": """
        appointment_key String,
        business_id String,
        appointment_id String,
        customer_id String,
        location_id String,
        service_id String,
        status LowCardinality(String),
        scheduled_at DateTime64(3, 'UTC'),
        amount Nullable(Decimal(18, 2)),
        currency LowCardinality(String),
        offer_id Nullable(String),
        created_at DateTime64(3, 'UTC'),
        updated_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY (business_id, appointment_key)""",
    "marts.dim_customers": """
        business_id String,
        customer_id String,
        phone_e164 String,
        full_name String,
        birthday Nullable(Date),
        timezone String,
        consent_marketing Bool,
        first_visit_at Nullable(DateTime64(3, 'UTC')),
        last_visit_at Nullable(DateTime64(3, 'UTC')),
        visits UInt64,
        revenue Decimal(38, 2),
        business_kind LowCardinality(String)
    ) ENGINE = MergeTree ORDER BY (business_id, customer_id)""",
    "intermediate.int_message_sends": """
        message_id String,
        business_id String,
        customer_id String,
        trigger LowCardinality(String),
        channel LowCardinality(String),
        holdout Bool,
        planned_at DateTime64(3, 'UTC'),
        sent_at Nullable(DateTime64(3, 'UTC')),
        delivered_at Nullable(DateTime64(3, 'UTC')),
        read_at Nullable(DateTime64(3, 'UTC')),
        replied_at Nullable(DateTime64(3, 'UTC')),
        failed_at Nullable(DateTime64(3, 'UTC')),
        opted_out_at Nullable(DateTime64(3, 'UTC'))
    ) ENGINE = MergeTree ORDER BY (business_id, customer_id, message_id)""",
    "marts.cashback_ledger": """
        entry_id String,
        partner_id String,
        event_type LowCardinality(String),
        customer_id String,
        phone_e164 String,
        amount Decimal(18, 2),
        currency LowCardinality(String),
        occurred_at DateTime64(3, 'UTC'),
        offer_id Nullable(String)
    ) ENGINE = MergeTree ORDER BY (customer_id, entry_id)""",
}

SCORES_TABLE = "ml.revisit_scores"

SCORES_DDL = f"""
CREATE TABLE IF NOT EXISTS {SCORES_TABLE} (
    business_id String,
    customer_id String,
    scored_at DateTime64(3, 'UTC'),
    model_version String,
    horizon_days UInt16,
    p_revisit Float64,
    decile UInt8,
    reason_codes Array(String),
    _inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree
ORDER BY (business_id, customer_id, scored_at, model_version)
"""


def create_input_tables(client: Client) -> None:
    """Create the ML input tables (standalone warehouses only; dbt owns them in production)."""
    for database in {name.split(".")[0] for name in INPUT_TABLES}:
        client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    for name, body in INPUT_TABLES.items():
        client.command(f"CREATE TABLE IF NOT EXISTS {name} ({body.strip()}")


def ensure_scores_table(client: Client) -> None:
    """Create `ml.revisit_scores` when missing."""
    client.command("CREATE DATABASE IF NOT EXISTS ml")
    client.command(SCORES_DDL)
