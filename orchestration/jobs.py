"""Jobs: the whole platform, and the slices that schedules and sensors run."""

from dagster import AssetSelection, define_asset_job

from orchestration.assets.activation import ACCRUALS, DELIVERIES, trigger_key
from orchestration.assets.dbt import dbt_models

main_job = define_asset_job(
    "revisit_main",
    selection=AssetSelection.all(),
    description="Everything end to end: ingestion → dbt → ML → activation (dry run).",
)

crm_job = define_asset_job(
    "ingest_crm",
    selection=AssetSelection.assets(["raw", "crm_businesses"]).required_multi_asset_neighbors(),
    description="Incremental CRM API pull and the businesses' file drops.",
)

spool_job = define_asset_job(
    "ingest_webhooks",
    selection=AssetSelection.assets(["raw", "messenger_events"]),
    description="Closed webhook spool segments into raw.messenger_events.",
)

partner_job = define_asset_job(
    "ingest_partners",
    selection=AssetSelection.assets(["raw", "partner_events"]).required_multi_asset_neighbors()
    | AssetSelection.assets(["raw", "message_sends"]),
    description="Partner offers and feeds, and the messaging platform's export.",
)

models_job = define_asset_job(
    "build_models",
    selection=AssetSelection.assets(dbt_models),
    description="dbt build of every model (incremental facts pick up what is new).",
)


LIVE = {"config": {"dry_run": False}}


def trigger_job(name: str, triggers: list[str], description: str):
    """Plan the given triggers into the outbox (live)."""
    return define_asset_job(
        name,
        selection=AssetSelection.assets(*(trigger_key(t) for t in triggers)),
        config={"ops": {"activation": LIVE}},
        description=description,
    )


birthday_job = trigger_job(
    "plan_birthdays", ["birthday_greeting"], "Birthday greetings of the next 24 hours."
)
reminders_job = trigger_job(
    "plan_reminders",
    ["appointment_reminder_24h", "appointment_reminder_2h"],
    "Reminders of appointments 24 h and 2 h ahead.",
)
weekly_job = trigger_job(
    "plan_weekly",
    ["winback_offer", "segment_offer", "partner_offer"],
    "Win-back, segment and partner offers.",
)
cashback_job = trigger_job(
    "plan_cashback",
    ["cashback_threshold", "cashback_expiry"],
    "Cashback balance and expiry notifications.",
)
deliveries_job = define_asset_job(
    "deliver",
    selection=AssetSelection.assets(ACCRUALS, DELIVERIES),
    config={"ops": {"cashback_accruals": LIVE, "deliveries": LIVE}},
    description="Accruals into the outbox, then everything due delivered exactly once.",
)

ACTIVATION_JOBS = [birthday_job, reminders_job, weekly_job, cashback_job, deliveries_job]
