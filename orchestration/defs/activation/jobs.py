"""Activation jobs: one planning job per `schedule.job` of the trigger specs, and delivery.

A trigger file with `schedule: {job: …, cron: …}` joins (or starts) a planning job; the
job plans its triggers live into the outbox. Nothing here names a trigger.
"""

from dagster import AssetSelection, define_asset_job

from activation.trigger_specs import PlanningJob, planning_jobs
from orchestration.defs.activation.assets import ACCRUALS, DELIVERIES, TRIGGERS, trigger_key

LIVE = {"config": {"dry_run": False}}
PLANNING_JOBS: dict[str, PlanningJob] = {job.name: job for job in planning_jobs(TRIGGERS)}


def planning_job(job: PlanningJob):
    """Plan the job's triggers together, live into the outbox."""
    return define_asset_job(
        job.name,
        selection=AssetSelection.assets(*(trigger_key(t) for t in job.triggers)),
        config={"ops": {"activation": LIVE}},
        description=job.description,
        tags={"revisit/planning": "live"},
    )


PLANNING = {name: planning_job(job) for name, job in PLANNING_JOBS.items()}

deliver = define_asset_job(
    "deliver",
    selection=AssetSelection.assets(ACCRUALS, DELIVERIES),
    config={"ops": {"cashback_accruals": LIVE, "deliveries": LIVE}},
    description="Accruals into the outbox, then everything due delivered once per key "
    "(per-provider crash guarantees: README, Delivery guarantees).",
)

JOBS = [*PLANNING.values(), deliver]
