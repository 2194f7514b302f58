"""The planner's inputs as the dbt models build them: DDL for tests and benchmarks.

The real tables come from dbt (`marts.*`, `intermediate.*`, `staging.*`) and ML
(`ml.revisit_scores`); tests and the planner benchmark create these shapes in a
temporary embedded warehouse instead of running dbt. Keep in step with the models.
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

INPUT_TABLES: dict[str, str] = {
    "marts.dim_customers": """
        business_id String, customer_id String, phone_e164 String, full_name String,
        birthday Nullable(Date32), gender String, business_kind String, timezone String,
        currency String, consent_marketing Bool, opted_out Bool,
        opted_out_at Nullable(DateTime64(3, 'UTC')), contactable Bool,
        created_at DateTime64(3, 'UTC'), first_visit_at Nullable(DateTime64(3, 'UTC')),
        last_visit_at Nullable(DateTime64(3, 'UTC')), visits UInt64, revenue Decimal(38, 2),
        next_appointment_at Nullable(DateTime64(3, 'UTC'))""",
    "marts.customer_rfm": """
        business_id String, customer_id String, as_of_date Date,
        last_visit_at DateTime64(3, 'UTC'), recency_days UInt32, frequency UInt32,
        monetary Decimal(38, 2), r_score UInt8, f_score UInt8, m_score UInt8,
        rfm_cell String, segment String""",
    "intermediate.int_appointments": """
        appointment_key String, business_id String, appointment_id String, customer_id String,
        location_id String, service_id String, status String,
        scheduled_at DateTime64(3, 'UTC'), amount Nullable(Decimal(18, 2)), currency String,
        offer_id Nullable(String), created_at DateTime64(3, 'UTC'),
        updated_at DateTime64(3, 'UTC')""",
    "staging.stg_partners__offers": """
        offer_id String, publisher_business_id String, title String,
        distributor_business_ids Array(String), reward_per_client Decimal(18, 2),
        discount_pct Decimal(9, 4), cashback_pct Decimal(9, 4), currency String,
        capacity Nullable(UInt32), audience_min_age Nullable(UInt8),
        audience_max_age Nullable(UInt8), audience_gender Nullable(String),
        valid_from Date, valid_to Date""",
    "marts.partner_offer_conversion": """
        offer_id String, publisher_business_id String, distributor_business_id String,
        currency String, exposed UInt64, redeemed UInt64, new_customers UInt64,
        conversion_rate Float64, rewarded_customers UInt64, reward_owed Decimal(38, 2),
        discount_given Decimal(38, 2), cashback_accrued Decimal(38, 2)""",
    "marts.cashback_ledger": """
        entry_id String, partner_id String, source_event_id String, event_type String,
        customer_id String, phone_e164 String, amount Decimal(18, 2), currency String,
        occurred_at DateTime64(3, 'UTC'), offer_id Nullable(String),
        loaded_at DateTime64(3, 'UTC')""",
    "marts.cashback_balances": """
        customer_id String, currency String, phone_e164 String, balance Decimal(38, 2),
        accrued Decimal(38, 2), reversed Decimal(38, 2), redeemed Decimal(38, 2),
        negative_balance Bool, entries UInt64, last_entry_at DateTime64(3, 'UTC')""",
    "ml.revisit_scores": """
        business_id String, customer_id String, scored_at DateTime64(3, 'UTC'),
        model_version String, p_revisit Float64, decile UInt8, reason_codes Array(String)""",
    "intermediate.int_message_sends": """
        message_id String, business_id String, customer_id String, phone_e164 String,
        trigger String, campaign_id Nullable(String), channel String, holdout Bool,
        planned_at DateTime64(3, 'UTC'), offer_id Nullable(String),
        provider_message_id Nullable(String), replied_at Nullable(DateTime64(3, 'UTC')),
        read_at Nullable(DateTime64(3, 'UTC')), delivered_at Nullable(DateTime64(3, 'UTC')),
        failed_at Nullable(DateTime64(3, 'UTC')), sent_at Nullable(DateTime64(3, 'UTC')),
        opted_out_at Nullable(DateTime64(3, 'UTC'))""",
    "staging.stg_messages__sends": """
        message_id String, business_id String, customer_id String, phone_e164 String,
        trigger String, campaign_id Nullable(String), channel String, holdout Bool,
        planned_at DateTime64(3, 'UTC'), offer_id Nullable(String),
        provider_message_id Nullable(String)""",
    "activation.message_log": """
        idempotency_key String, campaign_id String, trigger String, business_id String,
        customer_id String, channel String, state String, holdout Bool,
        send_at DateTime64(3, 'UTC')""",
}


def create_input_tables(client: Client, names: list[str] | None = None) -> None:
    """Create (empty) input tables of the given names (default: all)."""
    for db in ("marts", "intermediate", "staging", "ml", "activation"):
        client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    for name in names or list(INPUT_TABLES):
        client.command(
            f"CREATE TABLE IF NOT EXISTS {name} ({INPUT_TABLES[name]}) "
            "ENGINE = MergeTree ORDER BY tuple()"
        )
