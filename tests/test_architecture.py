"""The layering ARCHITECTURE.md promises, checked on the source: libraries import neither
the front doors, Dagster nor the simulation, and read no settings from the environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("ingestion", "ml", "activation", "warehouse")
FORBIDDEN = ("revisit", "orchestration", "simulation", "dagster", "dagster_dbt")
PRODUCTION = (*LIBRARIES, "orchestration")


def _modules(package: str) -> list[Path]:
    return [p for p in (ROOT / package).rglob("*.py") if "dbt_plugin" not in p.parts]


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", LIBRARIES)
def test_libraries_import_no_front_door_no_dagster_no_simulation(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported(path) & set(FORBIDDEN))
        for path in _modules(package)
        if _imported(path) & set(FORBIDDEN)
    }
    assert offenders == {}


@pytest.mark.parametrize("package", PRODUCTION)
def test_production_never_imports_the_simulation(package: str) -> None:
    offenders = [
        str(p.relative_to(ROOT)) for p in _modules(package) if "simulation" in _imported(p)
    ]
    assert offenders == []


def test_libraries_read_no_settings_from_the_environment() -> None:
    """Settings are read in revisit/settings.py only. The one library touching the
    environment is the dbt runner, which exports the profile's variables for dbt."""
    touching = {
        str(path.relative_to(ROOT))
        for package in LIBRARIES
        for path in _modules(package)
        if "os.environ" in (text := path.read_text(encoding="utf-8")) or "getenv(" in text
    }
    assert touching <= {"warehouse/dbt_runner.py"}
