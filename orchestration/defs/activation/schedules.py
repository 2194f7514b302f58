"""Activation schedules (off until switched on): each planning job on its trigger specs'
cron, delivery every five minutes.

Planning looks 24 hours ahead and the planner places every send at its business's local
time (birthdays in the local morning, nothing in local quiet hours); the delivery
schedule sends what is due every five minutes, so messages land at the right local
time in every time zone.
"""

from dagster import DefaultScheduleStatus, ScheduleDefinition

from orchestration.defs.activation.jobs import PLANNING, PLANNING_JOBS, deliver

PLANNING_SCHEDULES = [
    ScheduleDefinition(
        name=job.schedule_name,
        job=PLANNING[name],
        cron_schedule=job.cron,
        execution_timezone=job.timezone,
        default_status=DefaultScheduleStatus.STOPPED,
        description=f"Plan {', '.join(job.triggers)} (from their trigger specs).",
    )
    for name, job in PLANNING_JOBS.items()
]

deliver_every_5_min = ScheduleDefinition(
    name="deliver_every_5_min",
    job=deliver,
    cron_schedule="*/5 * * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Deliver what is due.",
)

SCHEDULES = [*PLANNING_SCHEDULES, deliver_every_5_min]
