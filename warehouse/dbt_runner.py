"""Running dbt against the configured warehouse.

The profile (`dbt_project/profiles.yml`) reads `REVISIT_DBT_*` variables; this module
derives them from the warehouse DSN so that `revisit`, Dagster and tests run dbt on
the same warehouse as everything else. In embedded mode dbt opens the chDB directory
in its own process: callers must not hold the warehouse open while it runs.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from warehouse.client import parse_dsn
from warehouse.config import DbtConfig

DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))


def dbt_env(config: DbtConfig) -> dict[str, str]:
    """The `REVISIT_DBT_*` variables the profile reads, for the configured warehouse."""
    warehouse = parse_dsn(config.warehouse_dsn)
    env = {
        "REVISIT_DBT_TARGET": str(config.target),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_LOG_PATH": str(config.artifacts_dir / "logs"),
        # Run artefacts stay with the data directory they describe, so several data
        # directories (tests, benchmarks) can run dbt side by side.
        "DBT_TARGET_PATH": str(run_target_path(config)),
        # A partial build runs only the tests whose every parent it builds: a
        # relationship test to a mart that was not built yet must not fail it.
        "DBT_INDIRECT_SELECTION": "cautious",
    }
    if warehouse.kind == "embedded":
        env["REVISIT_DBT_CHDB_PATH"] = str(warehouse.path)
    else:
        env.update(
            REVISIT_DBT_HOST=warehouse.host,
            REVISIT_DBT_PORT=str(warehouse.port),
            REVISIT_DBT_USER=warehouse.username,
            REVISIT_DBT_PASSWORD=warehouse.password,
            REVISIT_DBT_SECURE="true" if warehouse.secure else "false",
        )
    return env


@contextmanager
def dbt_environment(config: DbtConfig) -> Iterator[None]:
    """Export the profile's variables for the duration of a block.

    Needed where a library (dagster-dbt) builds the dbt subprocess's environment
    from this process's.
    """
    extra = dbt_env(config)
    saved = {key: os.environ.get(key) for key in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def dbt_command(args: Sequence[str], config: DbtConfig) -> list[str]:
    return [
        DBT_EXECUTABLE,
        *args,
        "--project-dir",
        str(config.project_dir),
        "--profiles-dir",
        str(config.profiles_dir),
    ]


def run_dbt(
    args: Sequence[str],
    config: DbtConfig,
    *,
    capture: bool = False,
    target: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `dbt <args>` on the configured warehouse; raises CalledProcessError on failure.

    Artefacts (run_results.json, compiled SQL) go to `target`, by default the data
    directory's `dbt/target`.
    """
    env = {**os.environ, **dbt_env(config)}
    if target is not None:
        env["DBT_TARGET_PATH"] = str(target)
    return subprocess.run(
        dbt_command(args, config),
        env=env,
        cwd=config.project_dir,
        check=True,
        text=True,
        capture_output=capture,
    )


def target_path(config: DbtConfig) -> Path:
    """The project's target folder: where the parsed manifest for Dagster lives."""
    return config.profiles_dir / "target"


def run_target_path(config: DbtConfig) -> Path:
    """Where runs on this data directory write their artefacts."""
    return config.artifacts_dir / "target"


def manifest_path(config: DbtConfig) -> Path:
    return target_path(config) / "manifest.json"


def ensure_manifest(config: DbtConfig) -> Path:
    """`dbt parse` when the manifest is missing or older than any project file.

    `@dbt_assets` needs the manifest at import time; parsing does not open the warehouse.
    """
    manifest = manifest_path(config)
    sources = [config.project_dir / "dbt_project.yml"]
    for folder in ("models", "macros", "seeds", "tests"):
        sources.extend((config.profiles_dir / folder).rglob("*"))
    newest = max((p.stat().st_mtime for p in sources if p.is_file()), default=0.0)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    # Processes that load the code location at once (test workers, dagster dev's
    # servers) parse one after the other and never read a half-written manifest.
    with open(manifest.parent / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not manifest.exists() or manifest.stat().st_mtime < newest:
            run_dbt(["parse", "--quiet"], config, capture=True, target=target_path(config))
    return manifest
