"""Shared fixtures: a temporary data directory and the settings that point at it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from revisit.settings import PROJECT_ROOT, Settings

# Fixtures: a throwaway PostgreSQL cluster and the sqlite/postgresql state-store parameter.
from tests.postgres import postgres_cluster, postgres_dsn, state_dsn  # noqa: F401

VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings whose data directory (and so the embedded warehouse) is temporary."""
    for name in list(os.environ):
        if name.startswith("REVISIT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REVISIT_DATA_DIR", str(tmp_path / "data"))
    yield Settings()


def run_cli(
    args: list[str], settings: Settings, *, check: bool = False, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the installed `revisit` command in a child process on the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVISIT_")}
    env["REVISIT_DATA_DIR"] = str(settings.data_dir)
    return subprocess.run(
        [str(VENV_BIN / "revisit"), *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )
