"""Ingestion: raw tables from the CRM, webhooks, partner feeds and the message export."""

from dagster import Definitions

from orchestration.defs.ingestion.assets import ASSETS
from orchestration.defs.ingestion.jobs import JOBS
from orchestration.defs.ingestion.quarantine import quarantine
from orchestration.defs.ingestion.schedules import SCHEDULES
from orchestration.defs.ingestion.sensors import SENSORS

defs = Definitions(assets=[*ASSETS, quarantine], jobs=JOBS, schedules=SCHEDULES, sensors=SENSORS)
