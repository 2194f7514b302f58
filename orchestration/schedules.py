"""Schedules: CRM pulls and file drops hourly, the models nightly."""

from dagster import DefaultScheduleStatus, ScheduleDefinition

from orchestration.jobs import crm_job, models_job

crm_schedule = ScheduleDefinition(
    name="crm_hourly",
    job=crm_job,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Incremental CRM API pull (cursor) and new file drops, every hour.",
)

models_schedule = ScheduleDefinition(
    name="models_nightly",
    job=models_job,
    cron_schedule="30 2 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="dbt build nightly: incremental facts, RFM snapshot of the day, marts.",
)

SCHEDULES = [crm_schedule, models_schedule]
