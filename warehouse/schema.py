"""Warehouse layout: the databases and the raw tables every load writes into.

Raw tables are the contract between ingestion and dbt. Each one:
- is a ReplacingMergeTree keyed by the source's natural key (ORDER BY) with
  `_version` as the version column, so a re-delivered or re-loaded row collapses
  to one copy; staging models read it with `FINAL` semantics (latest version);
- carries load bookkeeping: `_batch_id` (one load of one file/page/segment),
  `_source` (file name, endpoint or spool segment), `_row` (row reference in
  that source), `_loaded_at` (UTC).

Timestamps are `DateTime64(3, 'UTC')`, money `Decimal(18, 2)` with a currency code.
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

DATABASES = ("raw", "staging", "intermediate", "marts", "ml", "activation")

# `_batch_id` and `_source` are one value per batch: as LowCardinality the engine writes a
# dictionary of one string and an index per row instead of the string per row (a 1M-row
# CRM file's insert ~15% less CPU). Tables created before keep their String columns
# (`CREATE TABLE IF NOT EXISTS`); loads write the same literals and frames into either.
BOOKKEEPING = """
    _batch_id LowCardinality(String),
    _source LowCardinality(String),
    _row UInt64,
    _loaded_at DateTime64(3, 'UTC') DEFAULT now64(3),
    _version UInt64
"""

# table name → (columns, ORDER BY key). Columns come before the bookkeeping ones.
RAW_TABLES: dict[str, tuple[str, str]] = {
    "crm_businesses": (
        """
        business_id String,
        name String,
        kind LowCardinality(String),
        country LowCardinality(String),
        city String,
        timezone LowCardinality(String),
        currency LowCardinality(String),
        updated_at DateTime64(3, 'UTC')
        """,
        "business_id",
    ),
    "crm_locations": (
        """
        business_id String,
        location_id String,
        name String,
        city String,
        address String,
        timezone LowCardinality(String),
        updated_at DateTime64(3, 'UTC')
        """,
        "(business_id, location_id)",
    ),
    "crm_services": (
        """
        business_id String,
        service_id String,
        name String,
        category LowCardinality(String),
        price Decimal(18, 2),
        currency LowCardinality(String),
        duration_min UInt16,
        updated_at DateTime64(3, 'UTC')
        """,
        "(business_id, service_id)",
    ),
    "crm_customers": (
        """
        business_id String,
        source_customer_id String,
        customer_id String,
        phone_e164 String,
        phone_raw String,
        full_name String,
        birthday Nullable(Date32),
        gender LowCardinality(String),
        consent_marketing Bool,
        created_at DateTime64(3, 'UTC'),
        updated_at DateTime64(3, 'UTC'),
        is_deleted Bool DEFAULT false
        """,
        "(business_id, source_customer_id)",
    ),
    "crm_appointments": (
        """
        business_id String,
        appointment_id String,
        source_customer_id String,
        location_id String,
        service_id String,
        status LowCardinality(String),
        scheduled_at DateTime64(3, 'UTC'),
        amount Nullable(Decimal(18, 2)),
        currency LowCardinality(String),
        offer_id Nullable(String),
        created_at DateTime64(3, 'UTC'),
        updated_at DateTime64(3, 'UTC'),
        is_deleted Bool DEFAULT false
        """,
        "(business_id, appointment_id)",
    ),
    "partner_events": (
        """
        event_id String,
        partner_id LowCardinality(String),
        event_type LowCardinality(String),
        phone_e164 String,
        customer_id String,
        amount Decimal(18, 2),
        currency LowCardinality(String),
        occurred_at DateTime64(3, 'UTC'),
        offer_id Nullable(String),
        raw_payload String
        """,
        "(partner_id, event_id)",
    ),
    "partner_offers": (
        """
        offer_id String,
        publisher_business_id String,
        title String,
        distributor_business_ids Array(String),
        reward_per_client Decimal(18, 2),
        discount_pct Nullable(Decimal(9, 4)),
        cashback_pct Nullable(Decimal(9, 4)),
        currency LowCardinality(String),
        capacity Nullable(UInt32),
        audience_min_age Nullable(UInt8),
        audience_max_age Nullable(UInt8),
        audience_gender LowCardinality(Nullable(String)),
        valid_from Date,
        valid_to Date
        """,
        "offer_id",
    ),
    "message_sends": (
        """
        message_id String,
        business_id String,
        phone_e164 String,
        customer_id String,
        trigger LowCardinality(String),
        campaign_id Nullable(String),
        channel LowCardinality(String),
        holdout Bool,
        planned_at DateTime64(3, 'UTC'),
        offer_id Nullable(String),
        provider_message_id Nullable(String)
        """,
        "message_id",
    ),
    "messenger_events": (
        """
        provider LowCardinality(String),
        event_id String,
        event_type LowCardinality(String),
        provider_message_id Nullable(String),
        message_id Nullable(String),
        status LowCardinality(String),
        recipient Nullable(String),
        text Nullable(String),
        error_code Nullable(String),
        occurred_at DateTime64(3, 'UTC'),
        received_at DateTime64(3, 'UTC'),
        payload String
        """,
        "(provider, event_id)",
    ),
    "load_batches": (
        """
        target_table LowCardinality(String),
        status LowCardinality(String),
        rows_loaded UInt64,
        rows_quarantined UInt64,
        started_at DateTime64(3, 'UTC'),
        finished_at Nullable(DateTime64(3, 'UTC'))
        """,
        "(target_table, _batch_id)",
    ),
    "quarantine": (
        """
        source_kind LowCardinality(String),
        source_table LowCardinality(String),
        row_ref String,
        field String,
        reason String,
        raw_row String
        """,
        "(source_kind, _source, _batch_id, row_ref, field)",
    ),
}


# Columns a raw table gained after it first shipped: `CREATE TABLE IF NOT EXISTS` leaves a
# warehouse created before as it was, so `ensure_raw_tables` adds them (a no-op once there).
# `is_deleted`: the CRM's soft-delete flag (ingestion/SOURCES.md); staging drops such rows.
ADDED_COLUMNS: dict[str, tuple[str, ...]] = {
    "crm_customers": ("is_deleted Bool DEFAULT false AFTER updated_at",),
    "crm_appointments": ("is_deleted Bool DEFAULT false AFTER updated_at",),
}


def raw_table_ddl(name: str) -> str:
    columns, order_by = RAW_TABLES[name]
    return (
        f"CREATE TABLE IF NOT EXISTS raw.{name} ({columns.strip()},{BOOKKEEPING}) "
        f"ENGINE = ReplacingMergeTree(_version) ORDER BY {order_by}"
    )


def ensure_databases(client: Client) -> None:
    for database in DATABASES:
        client.command(f"CREATE DATABASE IF NOT EXISTS {database}")


def ensure_raw_tables(client: Client) -> None:
    """Create the databases and every raw table that does not exist yet."""
    ensure_databases(client)
    for name in RAW_TABLES:
        client.command(raw_table_ddl(name))
    for name, columns in ADDED_COLUMNS.items():
        for column in columns:
            client.command(f"ALTER TABLE raw.{name} ADD COLUMN IF NOT EXISTS {column}")


# -- a ClickHouse cluster (the dbt `cluster` target, deploy/docker-compose.yml) ----------------
# Each raw table is sharded: `raw.<name>_local` (ReplicatedReplacingMergeTree on every node,
# replicas of a shard share a Keeper path) behind `raw.<name>`, a Distributed table that
# loads and dbt use unchanged. Rows go to a shard by a hash of the table's ORDER BY key, so
# every version of a key lands on one shard and ReplacingMergeTree still collapses them.


def cluster_raw_table_ddl(name: str, cluster: str) -> list[str]:
    """The two statements creating `raw.<name>` on `cluster` (local table, then Distributed)."""
    columns, order_by = RAW_TABLES[name]
    on = f"ON CLUSTER {quote_cluster(cluster)}"
    return [
        f"CREATE TABLE IF NOT EXISTS raw.{name}_local {on} ({columns.strip()},{BOOKKEEPING}) "
        f"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{{shard}}/raw/{name}', "
        f"'{{replica}}', _version) ORDER BY {order_by}",
        f"CREATE TABLE IF NOT EXISTS raw.{name} {on} AS raw.{name}_local "
        f"ENGINE = Distributed('{cluster}', raw, {name}_local, "
        f"cityHash64({order_by}))",
    ]


def cluster_ddl(cluster: str) -> list[str]:
    """Every statement that lays out the warehouse on `cluster`, in order (idempotent)."""
    statements = [
        f"CREATE DATABASE IF NOT EXISTS {database} ON CLUSTER {quote_cluster(cluster)}"
        for database in DATABASES
    ]
    for name in RAW_TABLES:
        statements += cluster_raw_table_ddl(name, cluster)
    return statements


def quote_cluster(cluster: str) -> str:
    """A cluster name as an identifier (backquoted: names may hold dashes)."""
    return "`" + cluster.replace("\\", "\\\\").replace("`", "\\`") + "`"
