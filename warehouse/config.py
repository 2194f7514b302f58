"""What the warehouse layer needs to know: where ClickHouse is and how dbt reaches it.

Built by the front door (`revisit.settings`) from the environment; this package never
reads the environment itself.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

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


_SECRET_QUERY = re.compile(r"(?i)\b(password|passwd|pwd)=[^&]*")


def redact_dsn(dsn: str) -> str:
    """The DSN with its password shown as `***` (`postgresql://user:***@host/db`), for
    anything printed or logged: doctor, log lines, error messages."""
    try:
        parts = urlsplit(dsn)
    except ValueError:  # not a URL: hide whatever sits between `:` and the last `@`
        return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", dsn)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:***@{hostport}" if colon else netloc
    query = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}=***", parts.query)
    if (netloc, query) == (parts.netloc, parts.query):
        return dsn  # nothing secret; urlunsplit would also drop `sqlite:////`'s empty host
    return urlunsplit(parts._replace(netloc=netloc, query=query))
