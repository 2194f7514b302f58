"""Ingestion jobs: the slices of ingestion that schedules and sensors run."""

from dagster import AssetSelection, define_asset_job

from orchestration.defs.ingestion.assets import crm, message_sends, messenger_events, partner_feeds

ingest_crm = define_asset_job(
    "ingest_crm",
    selection=AssetSelection.assets(crm),
    description="Incremental CRM API pull and the businesses' file drops.",
)

ingest_webhooks = define_asset_job(
    "ingest_webhooks",
    selection=AssetSelection.assets(messenger_events),
    description="Closed webhook spool segments into raw.messenger_events.",
)

ingest_partners = define_asset_job(
    "ingest_partners",
    selection=AssetSelection.assets(partner_feeds, message_sends),
    description="Partner offers and feeds, and the messaging platform's export.",
)

JOBS = [ingest_crm, ingest_webhooks, ingest_partners]
