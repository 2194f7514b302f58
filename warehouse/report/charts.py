"""The report's charts as PNG bytes (one rendering serves HTML, XLSX and PDF).

`matplotlib.figure.Figure` on the Agg canvas, as ml/plots.py does: no pyplot state.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 96
HIGHLIGHT = "#c0392b"


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _margins(fig: Figure, labels: Sequence[str] = (), *, fontsize: float = 8,
             bottom: float = 0.6, right: float = 0.15, top: float = 0.3) -> None:  # fmt: skip
    """Fixed margins in inches: on the left room for the longest y label (about 0.6
    of the font size per character), the rest as given."""
    width, height = fig.get_size_inches()
    longest = max((len(str(label)) for label in labels), default=4)
    left = 0.25 + longest * fontsize * 0.6 / 72
    fig.subplots_adjust(left=min(left / width, 0.5), right=1 - right / width,
                        bottom=bottom / height, top=1 - top / height)  # fmt: skip


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # Margins are set per chart (`_margins`): a constrained layout or a tight bounding box
    # would draw every figure two or more times, and charts are most of a report's time.
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def rfm_grid(cells: pd.DataFrame, labels: dict[str, str]) -> bytes:
    """27 cells: one 3×3 recency × frequency panel per monetary score; colour = share of
    customers, text = customers and share of revenue. `cells` has r, f, m, customers,
    revenue_share, customer_share."""
    fig = _figure(9, 3.4)
    axes = fig.subplots(1, 3, sharey=True)
    top = max(float(cells.customer_share.max()), 1e-9) if len(cells) else 1.0
    for m, ax in zip((1, 2, 3), axes, strict=True):
        grid = np.zeros((3, 3))
        for row in cells[cells.m == m].itertuples():
            grid[3 - row.r, row.f - 1] = row.customer_share
            ax.text(row.f - 1, 3 - row.r, f"{row.customers:,}\n{row.revenue_share:.0%}",
                    ha="center", va="center", fontsize=8,
                    color="white" if row.customer_share > top * 0.55 else "black")  # fmt: skip
        ax.imshow(grid, cmap="Blues", vmin=0, vmax=top)
        ax.set_xticks(range(3), [f"F{f}" for f in (1, 2, 3)])
        ax.set_yticks(range(3), [f"R{r}" for r in (3, 2, 1)])
        ax.set_title(labels["m_panel"].format(m=m), fontsize=10)
    _margins(fig, ["R1"], bottom=0.35, right=0.1)
    fig.subplots_adjust(wspace=0.15)
    return png(fig)


def bars(names: Sequence[str], values: Sequence[float], xlabel: str,
         highlight: Sequence[bool] | None = None) -> bytes:  # fmt: skip
    fig = _figure(7, 0.32 * max(len(names), 3) + 0.8)
    ax = fig.subplots()
    colours = ["#2c7fb8" if not h else HIGHLIGHT for h in (highlight or [False] * len(names))]
    ax.barh(list(names)[::-1], list(values)[::-1], color=colours[::-1])
    ax.set_xlabel(xlabel)
    ax.tick_params(axis="y", labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    _margins(fig, names, fontsize=8, bottom=0.55)
    return png(fig)


def trend(pivot: pd.DataFrame, ylabel: str, highlight: Sequence[str]) -> bytes:
    """One line per segment (columns) over the month ends (index)."""
    fig = _figure(8, 3.6)
    ax = fig.subplots()
    for column in pivot.columns:
        hot = column in highlight
        ax.plot(pivot.index, pivot[column], marker="o", markersize=3,
                linewidth=2.2 if hot else 1.2, label=column,
                color=HIGHLIGHT if hot else None)  # fmt: skip
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.spines[["top", "right"]].set_visible(False)
    fig.autofmt_xdate()
    longest = max((len(str(c)) for c in pivot.columns), default=10)
    _margins(fig, ["1000"], fontsize=10, bottom=0.75, right=0.55 + longest * 7 * 0.6 / 72)
    return png(fig)


def matrix(pivot: pd.DataFrame, xlabel: str, ylabel: str, highlight: Sequence[str]) -> bytes:
    """A from × to heatmap with counts; columns named in `highlight` are outlined."""
    fig = _figure(8, 0.38 * len(pivot.index) + 2.2)
    ax = fig.subplots()
    values = pivot.to_numpy(dtype=float)
    shown = np.where(values > 0, np.log1p(values), 0)
    ax.imshow(shown, cmap="Blues", aspect="auto")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if values[i, j]:
                ax.text(j, i, f"{int(values[i, j]):,}", ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > shown.max() * 0.6 else "black")  # fmt: skip
    ax.set_xticks(range(len(pivot.columns)), pivot.columns, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(pivot.index)), pivot.index, fontsize=8)
    for j, column in enumerate(pivot.columns):
        if column in highlight:
            ax.add_patch(_outline(j, len(pivot.index)))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    longest = max((len(str(c)) for c in pivot.columns), default=4)
    _margins(fig, [*pivot.index, "xx"], fontsize=8, bottom=0.5 + longest * 8 * 0.45 / 72)
    return png(fig)


def _outline(column: int, rows: int):
    from matplotlib.patches import Rectangle

    return Rectangle((column - 0.5, -0.5), 1, rows, fill=False, edgecolor=HIGHLIGHT, linewidth=2)


def funnel(stages: Sequence[str], per_trigger: pd.DataFrame) -> bytes:
    """Grouped bars: one group per funnel stage, one bar per trigger (rows)."""
    fig = _figure(8, 3.4)
    ax = fig.subplots()
    width = 0.8 / max(len(per_trigger), 1)
    x = np.arange(len(stages))
    for i, (trigger, row) in enumerate(per_trigger.iterrows()):
        ax.bar(x + i * width - 0.4 + width / 2, row.to_numpy(dtype=float), width, label=trigger)
    ax.set_xticks(x, [textwrap.fill(s, 12) for s in stages], fontsize=8)
    ax.legend(fontsize=7)
    ax.spines[["top", "right"]].set_visible(False)
    _margins(fig, ["1000"], fontsize=10, bottom=0.55)
    return png(fig)


def monthly(months: Sequence[str], series: dict[str, Sequence[float]]) -> bytes:
    fig = _figure(8, 3.2)
    ax = fig.subplots()
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(months))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + i * width - 0.4 + width / 2, list(values), width, label=name)
    ax.set_xticks(x, months, rotation=40, ha="right", fontsize=8)
    ax.legend(fontsize=7)
    ax.spines[["top", "right"]].set_visible(False)
    _margins(fig, ["10000"], fontsize=10, bottom=0.75)
    return png(fig)


def score(p: np.ndarray, outcomes: pd.DataFrame | None, labels: dict[str, str]) -> bytes:
    """Distribution of the latest scores; with outcomes, calibration and lift by decile."""
    panels = 3 if outcomes is not None and len(outcomes) else 1
    fig = _figure(3.2 * panels + 0.6, 3.2)
    axes = np.atleast_1d(fig.subplots(1, panels))
    axes[0].hist(p, bins=20, range=(0, 1), color="#2c7fb8")
    axes[0].set(xlabel=labels["probability"], ylabel=labels["customers"],
                title=labels["distribution"])  # fmt: skip
    if panels == 3:
        y = outcomes.revisited.to_numpy(dtype=float)
        prob = outcomes.p_revisit.to_numpy(dtype=float)
        which = np.minimum((prob * 10).astype(int), 9)
        xs = [prob[which == k].mean() for k in range(10) if (which == k).any()]
        ys = [y[which == k].mean() for k in range(10) if (which == k).any()]
        axes[1].plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        axes[1].plot(xs, ys, marker="o")
        axes[1].set(xlabel=labels["probability"], ylabel=labels["observed"], xlim=(0, 1),
                    ylim=(0, 1), title=labels["calibration"])  # fmt: skip
        overall = y.mean() or 1.0
        lift = outcomes.assign(y=y).groupby("decile").y.mean() / overall
        axes[2].bar(lift.index.astype(int), lift.to_numpy(), color="#2c7fb8")
        axes[2].axhline(1, color="grey", linestyle="--", linewidth=1)
        axes[2].set(xlabel=labels["decile"], ylabel=labels["lift"], title=labels["lift_title"])
    _margins(fig, ["1000"], fontsize=10, bottom=0.6, top=0.4)
    fig.subplots_adjust(wspace=0.35)
    return png(fig)
