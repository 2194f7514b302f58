"""Model registry on the file system: versions, metadata, and the promoted version.

Layout under `settings.models_dir`:

    revisit/<version>/model.joblib     the fitted `ml.train.RevisitModel`
    revisit/<version>/metadata.json    version, created_at, training window, cutoffs,
                                       features, metrics (model + baselines on the held-out
                                       cutoff), data fingerprint, promotion decision
    revisit/promoted.json              {"version": ..., "promoted_at": ...}

Files are written to a temporary name and renamed, so a crash never leaves a half model
behind a version or a promotion pointing at nothing. Promotion rule: a new model must pass
the quality gate (`QualityGate`: enough held-out customers and positives, ROC-AUC above
the best baseline's by a margin) and then replaces the promoted one only if its ROC-AUC
on the new run's held-out data is not below the promoted model's ROC-AUC on the same rows
(re-scored with the promoted model). A refused model is saved but not promoted; when no
model is promoted yet, the best baseline is saved as `<version>-baseline-<name>` (a
`ml.baselines.BaselineModel`) and promoted instead, so scoring still works and says so.
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

from ml.baselines import BaselineModel
from ml.features import LABEL
from ml.metrics import score_metrics
from ml.promoted import MODEL_NAME, RegistryError, load_metadata, promoted_version
from ml.promoted import model_root as _root
from ml.train import RevisitModel, TrainingRun


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


def load_model(
    models_dir: Path, version: str | None = None
) -> tuple[str, RevisitModel | BaselineModel]:
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
class QualityGate:
    """What a trained model must show on its held-out cutoff before it may be promoted.

    A model fitted on a few dozen customers can score everyone alike (ROC-AUC 0.5) and
    would still beat "no model"; the gate refuses it, and a model that does not rank
    better than the simplest rule it was compared with is not worth its opacity either.
    """

    min_customers: int = 200
    min_positives: int = 20  # and as many negatives: an AUC needs both classes
    min_auc_margin: float = 0.005

    def refusals(self, metrics: dict[str, dict[str, float]]) -> list[str]:
        """Why the model's metrics fail the gate; empty when they pass."""
        model = metrics["model"]
        n = int(model["n"])
        positives = round(model["overall_rate"] * n) if n else 0
        out = []
        if n < self.min_customers:
            out.append(f"{n} held-out customers (at least {self.min_customers} needed)")
        if min(positives, n - positives) < self.min_positives:
            out.append(
                f"{positives} of {n} held-out customers revisited (at least "
                f"{self.min_positives} revisits and non-revisits needed)"
            )
        best = best_baseline(metrics)
        best_auc = metrics[best]["roc_auc"]
        auc = model["roc_auc"]
        if np.isnan(auc) or (not np.isnan(best_auc) and auc < best_auc + self.min_auc_margin):
            out.append(
                f"ROC-AUC {auc:.4f} is not above the best baseline ({best} {best_auc:.4f}) "
                f"by {self.min_auc_margin}"
            )
        return out


def best_baseline(metrics: dict[str, dict[str, float]]) -> str:
    """The baseline with the highest held-out ROC-AUC (lowest Brier when no AUC exists)."""
    names = [name for name in metrics if name != "model"]
    with_auc = [name for name in names if not np.isnan(metrics[name]["roc_auc"])]
    if with_auc:
        return max(with_auc, key=lambda name: metrics[name]["roc_auc"])
    return min(names, key=lambda name: metrics[name]["brier"])


@dataclass(frozen=True)
class Registration:
    """What `register` did."""

    version: str
    promoted: bool
    reason: str
    metadata: dict[str, Any]
    refusals: tuple[str, ...] = ()
    # The baseline version saved and promoted in the refused model's place, if any.
    fallback_version: str | None = None


def register(
    models_dir: Path,
    run: TrainingRun,
    *,
    tolerance: float = 0.0,
    now: dt.datetime | None = None,
    gate: QualityGate | None = None,
) -> Registration:
    """Save `run` as a new version and promote it if it passes the quality gate and is not
    worse than the promoted one.

    "Worse" = ROC-AUC more than `tolerance` below the promoted model's on this run's
    held-out rows (the promoted model re-scores them). A promoted version whose file
    cannot be loaded or scored does not block promotion; the reason says so. A refused
    model with nothing promoted yet leaves the best baseline promoted in its place.
    """
    now = now or dt.datetime.now(dt.UTC)
    version = f"{now:%Y%m%dT%H%M%S%f}Z-{run.data_fingerprint[:8]}"
    new_auc = run.metrics["model"]["roc_auc"]
    previous = promoted_version(models_dir)
    promoted_auc: float | None = None
    refusals = (gate or QualityGate()).refusals(run.metrics)
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
    if refusals:
        promote_it, reason = False, "refused: " + "; ".join(refusals)
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
            "refusals": refusals,
            "previous_version": previous,
            "new_roc_auc": new_auc,
            "promoted_roc_auc": promoted_auc,
            "tolerance": tolerance,
        },
    }
    metadata = _save(models_dir, version, run.model, metadata)
    if promote_it:
        promote(models_dir, version)
    fallback = None
    if refusals and previous is None:
        fallback = _save_baseline(models_dir, run, version, now)
        promote(models_dir, fallback)
        reason += f"; nothing was promoted yet, so scoring uses the baseline {fallback}"
    return Registration(
        version=version,
        promoted=promote_it,
        reason=reason,
        metadata=metadata,
        refusals=tuple(refusals),
        fallback_version=fallback,
    )


def _save(models_dir: Path, version: str, model: Any, metadata: dict[str, Any]) -> dict[str, Any]:
    metadata = _clean(metadata)
    folder = _root(models_dir) / version
    folder.mkdir(parents=True, exist_ok=False)
    with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".tmp") as handle:
        joblib.dump(model, handle)
    os.replace(handle.name, folder / "model.joblib")
    # metadata.json last: a version counts as saved only once it exists.
    _atomic_write(
        folder / "metadata.json", json.dumps(metadata, indent=2, default=_json_default).encode()
    )
    return metadata


def _save_baseline(models_dir: Path, run: TrainingRun, refused: str, now: dt.datetime) -> str:
    """Save the run's best baseline as a version of its own; returns the version."""
    name = best_baseline(run.metrics)
    version = f"{refused}-baseline-{name}"
    model = BaselineModel(name, run.baselines[name], run.config.horizon_days)
    metadata = {
        "name": MODEL_NAME,
        "version": version,
        "kind": "baseline",
        "baseline": name,
        "created_at": now.isoformat(),
        "horizon_days": run.config.horizon_days,
        "metrics": {name: run.metrics[name]},
        "refused_model_version": refused,
        "data_fingerprint": run.data_fingerprint,
        "promotion": {
            "promoted": True,
            "reason": f"model {refused} refused; best baseline on its held-out cutoff",
            "new_roc_auc": run.metrics[name]["roc_auc"],
            "promoted_roc_auc": None,
        },
    }
    _save(models_dir, version, model, metadata)
    return version


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
