"""Ingestion schedules (off until switched on): the CRM pull, hourly."""

from dagster import DefaultScheduleStatus, ScheduleDefinition

from orchestration.defs.ingestion.jobs import ingest_crm

crm_hourly = ScheduleDefinition(
    name="crm_hourly",
    job=ingest_crm,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Incremental CRM API pull (cursor) and new file drops, every hour.",
)

SCHEDULES = [crm_hourly]
