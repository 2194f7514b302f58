"""Scores against outcomes: discrimination, calibration and lift."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Count-weighted mean |observed rate − mean prediction| over equal-width bins of p."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for k in range(bins):
        mask = which == k
        if mask.any():
            total += mask.sum() * abs(y[mask].mean() - p[mask].mean())
    return float(total / len(y))


def top_decile_rate(y: np.ndarray, p: np.ndarray) -> float:
    """Outcome rate among the tenth with the highest scores (ties broken by order)."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    top = np.argsort(-p, kind="stable")[: max(1, int(np.ceil(len(p) / 10)))]
    return float(y[top].mean())


def score_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC, Brier, log loss, ECE, top-decile rate, overall rate and lift.

    `y` are 0/1 outcomes, `p` probabilities in [0, 1]. AUCs are NaN when only one class
    is present.
    """
    y = np.asarray(y, int)
    p = np.clip(np.asarray(p, float), 0.0, 1.0)
    both = 0 < y.sum() < len(y)
    overall = float(y.mean()) if len(y) else float("nan")
    top = top_decile_rate(y, p) if len(y) else float("nan")
    return {
        "n": len(y),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)) if len(y) else float("nan"),
        "log_loss": float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1]))
        if len(y)
        else float("nan"),
        "ece": expected_calibration_error(y, p) if len(y) else float("nan"),
        "top_decile_rate": top,
        "overall_rate": overall,
        "lift_top_decile": top / overall if overall else float("nan"),
    }
