"""Schedules: CRM pulls hourly, models nightly, activation planning and delivery.

Planning runs at fixed UTC times with a 24-hour horizon; the planner places every send
at its business's local time (birthdays in the local morning, nothing in local quiet
hours), and the delivery schedule sends what is due every five minutes, so messages
land at the right local time in every time zone. All are off until switched on.
"""

from dagster import DefaultScheduleStatus, ScheduleDefinition

from orchestration.jobs import (
    birthday_job,
    cashback_job,
    crm_job,
    deliveries_job,
    models_job,
    reminders_job,
    weekly_job,
)

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


def _activation(name: str, job, cron: str, description: str) -> ScheduleDefinition:
    return ScheduleDefinition(
        name=name, job=job, cron_schedule=cron, execution_timezone="UTC",
        default_status=DefaultScheduleStatus.STOPPED, description=description,
    )  # fmt: skip


ACTIVATION_SCHEDULES = [
    _activation("birthdays_daily", birthday_job, "15 0 * * *", "Plan the day's birthdays."),
    _activation("reminders_every_15_min", reminders_job, "*/15 * * * *", "Plan reminders."),
    _activation("offers_weekly", weekly_job, "0 3 * * 1", "Plan win-back and offers, Mondays."),
    _activation("cashback_daily", cashback_job, "30 4 * * *", "Plan cashback notices."),
    _activation("deliver_every_5_min", deliveries_job, "*/5 * * * *", "Deliver what is due."),
]

SCHEDULES = [crm_schedule, models_schedule, *ACTIVATION_SCHEDULES]
