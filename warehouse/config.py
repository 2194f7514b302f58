"""What the warehouse layer needs to know: where ClickHouse is and how dbt reaches it.

Built by the front door (`revisit.settings`) from the environment; this package never
reads the environment itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

# The dbt project sits at the repository root (`dbt_project.yml`), next to this package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class DbtConfig(BaseModel):
    """How dbt runs against the warehouse named by `warehouse_dsn`."""

    warehouse_dsn: str = Field(description="chdb:///abs/dir (embedded) or http(s)://… (server)")
    target: Literal["embedded", "server"] | None = Field(
        default=None, description="profile target; None picks it from the DSN's scheme"
    )
    artifacts_dir: Path = Field(description="run artefacts (target/, logs/) of this data dir")
    project_dir: Path = PROJECT_ROOT

    @model_validator(mode="after")
    def _target_from_dsn(self) -> DbtConfig:
        if self.target is None:
            self.target = "embedded" if self.warehouse_dsn.startswith("chdb:") else "server"
        return self

    @property
    def profiles_dir(self) -> Path:
        return self.project_dir / "dbt_project"
