"""One generated ecosystem at the `test` scale, shared by the module's tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simulation.ecosystem import SCALES, generate


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("synthetic") / "src"
    manifest = generate(out, customers=SCALES["test"], seed=7, include_broken_files=True)
    return out, manifest
