"""Jobs: the whole platform, and the slices that schedules and sensors run."""

from dagster import AssetSelection, define_asset_job

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
