"""The registry's pointers, read without loading a model: which version is promoted and
a version's metadata (`ml.registry` writes them; its layout is described there).

Apart from `ml.registry` because that module imports scikit-learn, joblib and pandas
(about 4 s on a 2-core machine), which a reader of two JSON files — the marketer's
report, a status line — should not pay for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODEL_NAME = "revisit"


class RegistryError(RuntimeError):
    """No promoted model, or a version that does not exist."""


def model_root(models_dir: Path) -> Path:
    return Path(models_dir) / MODEL_NAME


def promoted_version(models_dir: Path) -> str | None:
    """The promoted version, or None before the first promotion."""
    pointer = model_root(models_dir) / "promoted.json"
    if not pointer.exists():
        return None
    return json.loads(pointer.read_text())["version"]


def load_metadata(models_dir: Path, version: str) -> dict[str, Any]:
    path = model_root(models_dir) / version / "metadata.json"
    if not path.exists():
        raise RegistryError(f"Model version {version!r} not found under {model_root(models_dir)}.")
    return json.loads(path.read_text())
