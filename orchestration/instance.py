"""The Dagster instance under the data directory (runs, event logs, schedules)."""

from __future__ import annotations

import shutil
from pathlib import Path

from dagster import DagsterInstance

from revisit.settings import Settings

INSTANCE_CONFIG = Path(__file__).with_name("dagster.yaml")


def prepare_dagster_home(settings: Settings) -> Path:
    """Create the Dagster home with the project's instance config (one run at a time)."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INSTANCE_CONFIG, home / "dagster.yaml")
    return home


def get_instance(settings: Settings) -> DagsterInstance:
    return DagsterInstance.from_config(str(prepare_dagster_home(settings)))
