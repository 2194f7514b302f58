"""Model registry on the file system: versions, metadata, and the promoted version.

Layout under `settings.models_dir`:

    revisit/<version>/model.joblib     the fitted `ml.train.RevisitModel`
    revisit/<version>/metadata.json    version, created_at, training window, cutoffs,
                                       features, metrics (model + baselines on the held-out
                                       cutoff), data fingerprint, promotion decision
    revisit/promoted.json              {"version": ..., "promoted_at": ...}

Files are written to a temporary name and renamed, so a crash never leaves a half model
behind a version or a promotion pointing at nothing. Promotion rule: a new model replaces
the promoted one only if its ROC-AUC on the new run's held-out data is not below the
promoted model's ROC-AUC on the same rows (re-scored with the promoted model).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from ml.features import LABEL
from ml.metrics import score_metrics
from ml.train import RevisitModel, TrainingRun

MODEL_NAME = "revisit"


class RegistryError(RuntimeError):
    """No promoted model, or a version that does not exist."""


def _root(models_dir: Path) -> Path:
    return Path(models_dir) / MODEL_NAME


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def _clean(obj: Any) -> Any:
    """NaN → None so metadata stays strict JSON."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def list_versions(models_dir: Path) -> list[str]:
    """Saved versions, oldest first (versions sort by creation time)."""
    root = _root(models_dir)
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "metadata.json").exists())


def promoted_version(models_dir: Path) -> str | None:
    """The promoted version, or None before the first promotion."""
    pointer = _root(models_dir) / "promoted.json"
    if not pointer.exists():
        return None
    return json.loads(pointer.read_text())["version"]


def load_metadata(models_dir: Path, version: str) -> dict[str, Any]:
    path = _root(models_dir) / version / "metadata.json"
    if not path.exists():
        raise RegistryError(f"Model version {version!r} not found under {_root(models_dir)}.")
    return json.loads(path.read_text())


def load_model(models_dir: Path, version: str | None = None) -> tuple[str, RevisitModel]:
    """(version, model) — the promoted version unless `version` is given."""
    version = version or promoted_version(models_dir)
    if version is None:
        raise RegistryError(
            f"No promoted revisit model under {_root(models_dir)}: train one first."
        )
    path = _root(models_dir) / version / "model.joblib"
    if not path.exists():
        raise RegistryError(f"Model version {version!r} has no model file at {path}.")
    return version, joblib.load(path)


def promote(models_dir: Path, version: str) -> None:
    """Point the registry at `version` (it must exist)."""
    load_metadata(models_dir, version)
    pointer = {"version": version, "promoted_at": dt.datetime.now(dt.UTC).isoformat()}
    _atomic_write(_root(models_dir) / "promoted.json", json.dumps(pointer).encode())


def auc_regressed(new_roc_auc: float, promoted_roc_auc: float, max_drop: float = 0.02) -> bool:
    """True when the new model's ROC-AUC is more than `max_drop` below the promoted one's."""
    return bool(new_roc_auc < promoted_roc_auc - max_drop)


@dataclass(frozen=True)
class AucCheck:
    """The asset-check verdict for one saved version against the model promoted before it."""

    passed: bool
    version: str
    new_roc_auc: float
    promoted_version: str | None
    promoted_roc_auc: float | None
    max_drop: float

    @property
    def drop(self) -> float | None:
        if self.promoted_roc_auc is None:
            return None
        return self.promoted_roc_auc - self.new_roc_auc


def check_against_promoted(models_dir: Path, version: str, max_drop: float = 0.02) -> AucCheck:
    """Is `version`'s ROC-AUC within `max_drop` of the then-promoted model's, same rows?

    Reads the comparison stored at registration (both models scored on the new run's
    held-out rows). Passes when there was no promoted model to compare with.
    """
    meta = load_metadata(models_dir, version)
    comparison = meta["promotion"]
    new_auc = float(comparison["new_roc_auc"])
    old_auc = comparison.get("promoted_roc_auc")
    passed = old_auc is None or not auc_regressed(new_auc, float(old_auc), max_drop)
    return AucCheck(
        passed=passed,
        version=version,
        new_roc_auc=new_auc,
        promoted_version=comparison.get("previous_version"),
        promoted_roc_auc=None if old_auc is None else float(old_auc),
        max_drop=max_drop,
    )


@dataclass(frozen=True)
class Registration:
    """What `register` did."""

    version: str
    promoted: bool
    reason: str
    metadata: dict[str, Any]


def register(
    models_dir: Path, run: TrainingRun, *, tolerance: float = 0.0, now: dt.datetime | None = None
) -> Registration:
    """Save `run` as a new version and promote it unless it is worse than the promoted one.

    "Worse" = ROC-AUC more than `tolerance` below the promoted model's on this run's
    held-out rows (the promoted model re-scores them). A promoted version whose file
    cannot be loaded or scored does not block promotion; the reason says so.
    """
    now = now or dt.datetime.now(dt.UTC)
    version = f"{now:%Y%m%dT%H%M%S%f}Z-{run.data_fingerprint[:8]}"
    new_auc = run.metrics["model"]["roc_auc"]
    previous = promoted_version(models_dir)
    promoted_auc: float | None = None
    if previous is None:
        promote_it, reason = True, "first model"
    else:
        try:
            _, old_model = load_model(models_dir, previous)
            held_out = run.evaluation_features
            old_scores = old_model.predict(held_out)
            promoted_auc = score_metrics(held_out[LABEL].to_numpy(int), old_scores)["roc_auc"]
        except Exception as ex:  # an unreadable old model must not block a good new one
            promote_it, reason = True, f"promoted model {previous} could not be scored: {ex}"
        else:
            promote_it = bool(new_auc >= promoted_auc - tolerance)
            reason = (
                f"ROC-AUC {new_auc:.4f} vs promoted {previous} {promoted_auc:.4f} "
                f"on the same held-out rows"
            )
    metadata = {
        "name": MODEL_NAME,
        "version": version,
        "created_at": now.isoformat(),
        "horizon_days": run.config.horizon_days,
        "training_window": {
            "first_cutoff": f"{run.plan.train[0]:%Y-%m-%d}",
            "last_label_day": f"{run.plan.evaluation:%Y-%m-%d}",
        },
        "cutoffs": run.plan.as_dict(),
        "features": run.model.features,
        "reason_features": run.model.reason_features,
        "rows": run.rows,
        "metrics": run.metrics,
        "tuning": run.tuning["chosen"],
        "data_fingerprint": run.data_fingerprint,
        "promotion": {
            "promoted": promote_it,
            "reason": reason,
            "previous_version": previous,
            "new_roc_auc": new_auc,
            "promoted_roc_auc": promoted_auc,
            "tolerance": tolerance,
        },
    }
    metadata = _clean(metadata)
    folder = _root(models_dir) / version
    folder.mkdir(parents=True, exist_ok=False)
    with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".tmp") as handle:
        joblib.dump(run.model, handle)
    os.replace(handle.name, folder / "model.joblib")
    # metadata.json last: a version counts as saved only once it exists.
    _atomic_write(
        folder / "metadata.json", json.dumps(metadata, indent=2, default=_json_default).encode()
    )
    if promote_it:
        promote(models_dir, version)
    return Registration(version=version, promoted=promote_it, reason=reason, metadata=metadata)


def train_and_register(
    client: Any,
    models_dir: Path,
    as_of: dt.date | str | pd.Timestamp,
    config: Any = None,
    *,
    tolerance: float = 0.0,
) -> tuple[TrainingRun, Registration]:
    """Train on everything known at `as_of` and register the result.

    The held-out cutoff is `as_of − horizon` (the latest one whose outcome window has
    fully happened); see `ml.train` for the rest of the cutoff layout.
    """
    from ml.train import TrainConfig, train_and_evaluate

    config = config or TrainConfig()
    evaluation = pd.Timestamp(as_of) - pd.Timedelta(days=config.horizon_days)
    run = train_and_evaluate(client, evaluation, config)
    return run, register(models_dir, run, tolerance=tolerance)
