"""dbt schedules (off until switched on)."""

from dagster import DefaultScheduleStatus, ScheduleDefinition

from orchestration.defs.models.jobs import build_models

models_nightly = ScheduleDefinition(
    name="models_nightly",
    job=build_models,
    cron_schedule="30 2 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="dbt build nightly: incremental facts, RFM snapshot of the day, marts.",
)

SCHEDULES = [models_nightly]
