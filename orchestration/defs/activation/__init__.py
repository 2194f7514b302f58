"""Activation: trigger planning, accruals and delivery; jobs and schedules per trigger spec."""

from dagster import Definitions

from orchestration.defs.activation.assets import ASSETS
from orchestration.defs.activation.jobs import JOBS
from orchestration.defs.activation.schedules import SCHEDULES
from orchestration.defs.activation.sensors import SENSORS

defs = Definitions(assets=ASSETS, jobs=JOBS, schedules=SCHEDULES, sensors=SENSORS)
