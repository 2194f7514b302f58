"""Ingestion schedules (off until switched on): the CRM pull, hourly; the webhook topic,
every minute (with REVISIT_WEBHOOK_SINK=kafka no spool segment closes to wake the
sensor)."""

from dagster import DefaultScheduleStatus, ScheduleDefinition

from orchestration.defs.ingestion.jobs import ingest_crm, ingest_webhooks

crm_hourly = ScheduleDefinition(
    name="crm_hourly",
    job=ingest_crm,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Incremental CRM API pull (cursor) and new file drops, every hour.",
)

webhook_topic_every_minute = ScheduleDefinition(
    name="webhook_topic_every_minute",
    job=ingest_webhooks,
    cron_schedule="* * * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Load new webhooks from the Kafka topic (switch on with the Kafka sink).",
)

SCHEDULES = [crm_hourly, webhook_topic_every_minute]
