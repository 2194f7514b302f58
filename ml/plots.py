"""Calibration plot and lift chart as PNG bytes, for run metadata.

Figures are made with `matplotlib.figure.Figure` (rendered by the Agg canvas) rather than
pyplot, so no global backend or figure registry is touched in the calling process.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def calibration_plot_png(y: np.ndarray, scores: Mapping[str, np.ndarray], bins: int = 10) -> bytes:
    """Reliability diagram: observed revisit rate per predicted-probability bin, per scorer."""
    y = np.asarray(y, float)
    fig = _figure(5.5, 5)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for name, p in scores.items():
        p = np.clip(np.asarray(p, float), 0, 1)
        which = np.minimum((p * bins).astype(int), bins - 1)
        xs, ys = [], []
        for k in range(bins):
            mask = which == k
            if mask.any():
                xs.append(p[mask].mean())
                ys.append(y[mask].mean())
        ax.plot(xs, ys, marker="o", label=name)
    ax.set(xlabel="predicted probability", ylabel="observed revisit rate", xlim=(0, 1), ylim=(0, 1))
    ax.set_title("Calibration")
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def lift_chart_png(y: np.ndarray, scores: Mapping[str, np.ndarray]) -> bytes:
    """Revisit rate per score decile (1 = highest scores) relative to the overall rate."""
    y = np.asarray(y, float)
    overall = y.mean() if len(y) else 0.0
    fig = _figure(6.5, 4.5)
    ax = fig.subplots()
    deciles = np.arange(1, 11)
    width = 0.8 / max(1, len(scores))
    for i, (name, p) in enumerate(scores.items()):
        order = np.argsort(-np.asarray(p, float), kind="stable")
        parts = np.array_split(y[order], 10)
        lift = [part.mean() / overall if len(part) and overall else 0.0 for part in parts]
        ax.bar(deciles + (i - (len(scores) - 1) / 2) * width, lift, width=width, label=name)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="score decile (1 = top)", ylabel="lift (rate / overall rate)", xticks=deciles)
    ax.set_title(f"Lift by decile (overall rate {overall:.3f})")
    ax.legend(fontsize=8)
    return _png(fig)
