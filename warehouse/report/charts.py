"""The report's charts, built from the sections' frames: a Vega-Lite specification per
chart (rendered by `vega.py`), its data as `Plot`s for the workbook's native charts and,
for charts of several series, its legend as `Key`s.

Why not matplotlib (which ml/plots.py uses): a report has seven charts per business
and the demo has fifty businesses; matplotlib spent ~0.1 s per chart laying out ticks and
text in Python, vl-convert renders the same chart several times faster
(`benchmarks/bench_report.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from warehouse.report.vega import BLUE, HIGHLIGHT, PALETTE, Chart, Key, Plot, render

# Units of the RFM grid per monetary panel: 3 cells and a gap.
GRID_PANEL = 3.4


def _series_colours(names: Sequence[str], bold: Sequence[str] = ()) -> tuple[dict, list[Key]]:
    """A colour per series name, in order (cycling the palette): the Vega-Lite colour
    scale, without Vega's legend, and the legend the report draws itself."""
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(names))]
    scale = {"domain": list(names), "range": colours}
    return scale, [Key(str(n), c, n in bold) for n, c in zip(names, colours, strict=True)]


def _values(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records")


def rfm_grid(cells: pd.DataFrame, labels: dict[str, str], lang: str) -> Chart:
    """27 cells: one 3×3 recency × frequency panel per monetary score; colour = share of
    customers, text = customers and share of revenue. `cells` has r, f, m, customers,
    revenue_share, customer_share.

    Drawn as positioned rectangles and texts in one view: a faceted spec (a panel per M)
    renders twice as slowly, and the grid is the report's costliest chart."""
    top = max(float(cells.customer_share.max()), 1e-9) if len(cells) else 1.0
    left = (cells.m - 1) * GRID_PANEL + cells.f - 1  # panels side by side, a gap between
    # The colour's domain is fixed ([0, 1] of the largest share) and the data scaled to
    # it, so every business's grid shares one compiled spec.
    rects = pd.DataFrame({"x": left, "x2": left + 1, "y": cells.r - 1, "y2": cells.r,
                          "share": cells.customer_share / top})  # fmt: skip
    thousands = "\u00a0" if lang == "ru" else ","
    texts = [
        {"x": x + 0.5, "y": r - 0.5, "size": 11,
         "text": f"{c:,}".replace(",", thousands) + f"\n{s:.0%}",
         "light": bool(share > top * 0.55)}
        for x, r, c, s, share in zip(left, cells.r, cells.customers, cells.revenue_share,
                                     cells.customer_share, strict=True)
    ]  # fmt: skip
    for m in (1, 2, 3):
        base = (m - 1) * GRID_PANEL
        texts.append({"x": base + 1.5, "y": 3.35, "size": 12, "light": False,
                      "text": labels["m_panel"].format(m=m)})  # fmt: skip
        texts += [{"x": base + f - 0.5, "y": -0.25, "size": 10, "light": False,
                   "text": f"F{f}"} for f in (1, 2, 3)]  # fmt: skip
    texts += [{"x": -0.3, "y": r - 0.5, "size": 10, "light": False, "text": f"R{r}"}
              for r in (1, 2, 3)]  # fmt: skip
    hidden = {"axis": None, "scale": {"zero": False, "nice": False}}
    return render({
        "width": 760, "height": 230,
        "layer": [
            {"data": {"values": _values(rects)}, "mark": {"type": "rect", "stroke": "white"},
             "encoding": {
                 "x": {"field": "x", "type": "quantitative", **hidden,
                       "scale": {"domain": [-0.6, 3 * GRID_PANEL - 0.4]}},
                 "x2": {"field": "x2"},
                 "y": {"field": "y", "type": "quantitative", **hidden,
                       "scale": {"domain": [-0.5, 3.6]}},
                 "y2": {"field": "y2"},
                 "color": {"field": "share", "type": "quantitative", "legend": None,
                           "scale": {"scheme": "blues", "domain": [0, 1]}}}},
            {"data": {"values": texts},
             "mark": {"type": "text", "lineBreak": "\n"},
             "encoding": {
                 "x": {"field": "x", "type": "quantitative"},
                 "y": {"field": "y", "type": "quantitative"},
                 "text": {"field": "text"},
                 "size": {"field": "size", "type": "quantitative", "scale": None},
                 "color": {"condition": {"test": "datum.light", "value": "white"},
                           "value": "black"}}},
        ],
    }, lang, _grid_plots(cells, labels))  # fmt: skip


def _grid_plots(cells: pd.DataFrame, labels: dict[str, str]) -> list[Plot]:
    """The grid as two tables of R rows (R3 on top, as drawn) × 9 M·F columns."""
    columns = [(m, f) for m in (1, 2, 3) for f in (1, 2, 3)]

    def table(value: str) -> dict[str, list[float]]:
        # Plain dicts: indexing a MultiIndex per cell cost more than the rest of the grid.
        by_cell = dict(zip(zip(cells.r, cells.f, cells.m, strict=True), cells[value],
                           strict=True))  # fmt: skip
        return {f"M{m} F{f}": [float(by_cell.get((r, f, m), 0.0)) for r in (3, 2, 1)]
                for m, f in columns}  # fmt: skip

    rows = ["R3", "R2", "R1"]
    return [Plot("heatmap", labels["customers"], rows, table("customers")),
            Plot("heatmap", labels["revenue_share"], rows, table("revenue_share"),
                 number_format="0.0%")]  # fmt: skip


def bars(names: Sequence[str], values: Sequence[float], xlabel: str, lang: str,
         highlight: Sequence[bool] | None = None, colours: Sequence[str] | None = None,
         legend: Sequence[Key] = ()) -> Chart:  # fmt: skip
    """Horizontal bars in the given order, blue or in `colours`; highlighted ones in red."""
    hot = list(highlight or [False] * len(names))
    fill = [HIGHLIGHT if h else c for h, c in zip(hot, colours or [BLUE] * len(names),
                                                  strict=True)]  # fmt: skip
    data = pd.DataFrame({"name": list(names), "value": list(values), "hot": hot, "fill": fill})
    return render({
        "data": {"values": _values(data)}, "width": 560, "height": {"step": 22},
        "mark": "bar",
        "encoding": {
            "y": {"field": "name", "type": "nominal", "sort": None, "title": None,
                  "axis": {"labelLimit": 320}},
            "x": {"field": "value", "type": "quantitative", "title": xlabel},
            "color": {"field": "fill", "type": "nominal", "scale": None},
        },
    }, lang, [Plot("bar", "", list(data.name), {xlabel: data.value.astype(float).tolist()},
                   x_title=xlabel, highlight=tuple(data.name[data.hot]))], legend)  # fmt: skip


def trend(pivot: pd.DataFrame, ylabel: str, highlight: Sequence[str], lang: str) -> Chart:
    """One line per segment (columns) over the month ends (index); highlighted segments
    drawn thicker."""
    long = pivot.rename_axis(index="date", columns="segment").stack().rename("customers")
    data = long.reset_index()
    data["date"] = pd.to_datetime(data.date).dt.strftime("%Y-%m-%d")
    data["hot"] = data.segment.isin(list(highlight))
    scale, legend = _series_colours([str(c) for c in pivot.columns], highlight)
    return render({
        "data": {"values": _values(data)}, "width": 620, "height": 260,
        "mark": {"type": "line", "point": {"size": 18}},
        "encoding": {
            "x": {"field": "date", "type": "temporal", "title": None,
                  "axis": {"format": "%Y-%m", "labelAngle": -40}},
            "y": {"field": "customers", "type": "quantitative", "title": ylabel},
            "color": {"field": "segment", "type": "nominal", "scale": scale, "legend": None},
            "strokeWidth": {"condition": {"test": "datum.hot", "value": 3.2}, "value": 1.4},
        },
    }, lang, [Plot("line", ylabel, [f"{d:%Y-%m}" for d in pd.to_datetime(pivot.index)],
                   {str(c): pivot[c].astype(float).tolist() for c in pivot.columns},
                   y_title=ylabel, highlight=tuple(highlight))], legend)  # fmt: skip


def matrix(pivot: pd.DataFrame, xlabel: str, ylabel: str, highlight: Sequence[str],
           lang: str) -> Chart:  # fmt: skip
    """A from × to heatmap of counts (log colour); cells of the columns in `highlight`
    outlined."""
    rows, columns = list(pivot.index), list(pivot.columns)
    long = pivot.rename_axis(index="from", columns="to").stack().rename("n").reset_index()
    long["n"] = long.n.astype(int)
    shade = np.log1p(long.n)
    # Scaled to [0, 1] here rather than by a per-business domain in the spec: every
    # business's matrix shares one compiled spec.
    long["shade"] = shade / (float(shade.max()) or 1.0)
    long["hot"] = long["to"].isin(list(highlight))
    position = {
        "x": {
            "field": "to",
            "type": "nominal",
            "sort": columns,
            "title": xlabel,
            "axis": {"labelAngle": -40, "labelLimit": 180},
        },
        "y": {
            "field": "from",
            "type": "nominal",
            "sort": rows,
            "title": ylabel,
            "axis": {"labelLimit": 220},
        },
    }
    return render({
        "data": {"values": _values(long)},
        "width": {"step": 46}, "height": {"step": 24}, "encoding": position,
        "layer": [
            {"mark": "rect", "encoding": {"color": {
                "field": "shade", "type": "quantitative", "legend": None,
                "scale": {"scheme": "blues", "domain": [0, 1]}}}},
            {"mark": {"type": "rect", "fill": None, "stroke": HIGHLIGHT, "strokeWidth": 1.5},
             "transform": [{"filter": "datum.hot"}]},
            {"mark": {"type": "text", "fontSize": 9},
             "transform": [{"filter": "datum.n > 0"}],
             "encoding": {"text": {"field": "n", "type": "quantitative", "format": ",d"},
                          "color": {"condition": {"test": "datum.shade > 0.6",
                                                  "value": "white"}, "value": "black"}}},
        ],
    }, lang, [Plot("heatmap", f"{ylabel} \\ {xlabel}", [str(r) for r in rows],
                   {str(c): pivot[c].astype(float).tolist() for c in columns},
                   x_title=xlabel, y_title=ylabel, highlight=tuple(highlight))])  # fmt: skip


def _grouped(frame: pd.DataFrame, group: str, series: str, value: str, groups: list[str],
             lang: str, angle: int = 0) -> Chart:  # fmt: skip
    totals: dict[str, dict[Any, float]] = {}
    for g, name, v in zip(frame[group], frame[series], frame[value], strict=True):
        per_group = totals.setdefault(str(name), {})
        per_group[g] = per_group.get(g, 0.0) + float(v)
    scale, legend = _series_colours(sorted(totals))
    return render({
        "data": {"values": _values(frame)}, "width": 640, "height": 240, "mark": "bar",
        "encoding": {
            "x": {"field": group, "type": "nominal", "sort": groups, "title": None,
                  "axis": {"labelAngle": angle, "labelLimit": 120}},
            "xOffset": {"field": series, "type": "nominal"},
            "y": {"field": value, "type": "quantitative", "title": None},
            "color": {"field": series, "type": "nominal", "scale": scale, "legend": None},
        },
    }, lang, [Plot("column", "", groups,
                   {name: [per_group.get(g, 0.0) for g in groups]
                    for name, per_group in sorted(totals.items())})], legend)  # fmt: skip


def funnel(stages: Sequence[str], per_trigger: pd.DataFrame, lang: str) -> Chart:
    """Grouped bars: one group per funnel stage, one bar per trigger (rows)."""
    frame = per_trigger.copy()
    frame.columns = list(stages)
    long = frame.rename_axis(index="trigger", columns="stage").stack().rename("n")
    return _grouped(long.reset_index(), "stage", "trigger", "n", list(stages), lang)


def monthly(months: Sequence[str], series: dict[str, Sequence[float]], lang: str) -> Chart:
    """Grouped bars: one group per month, one bar per series."""
    frame = pd.DataFrame(
        [{"month": m, "series": name, "value": float(v)}
         for name, values in series.items() for m, v in zip(months, values, strict=True)]
    )  # fmt: skip
    return _grouped(frame, "month", "series", "value", list(dict.fromkeys(months)), lang, -40)


def score(p: np.ndarray, outcomes: pd.DataFrame | None, labels: dict[str, str],
          lang: str) -> Chart:  # fmt: skip
    """Distribution of the latest scores; with outcomes, calibration and lift by decile."""
    counts, edges = np.histogram(p, bins=20, range=(0, 1))
    histogram = pd.DataFrame({"lo": edges[:-1], "hi": edges[1:], "n": counts})
    panels: list[dict[str, Any]] = [{
        "title": labels["distribution"], "width": 230, "height": 200,
        "data": {"values": _values(histogram)}, "mark": {"type": "bar", "color": BLUE},
        "encoding": {
            "x": {"field": "lo", "type": "quantitative", "bin": {"binned": True, "step": 0.05},
                  "title": labels["probability"], "scale": {"domain": [0, 1]}},
            "x2": {"field": "hi"},
            "y": {"field": "n", "type": "quantitative", "title": labels["customers"]},
        },
    }]  # fmt: skip
    plots = [Plot("column", labels["distribution"],
                  [f"{lo:.0%}–{hi:.0%}" for lo, hi in pairwise(edges)],
                  {labels["customers"]: counts.astype(float).tolist()},
                  x_title=labels["probability"], y_title=labels["customers"])]  # fmt: skip
    if outcomes is not None and len(outcomes):
        y = outcomes.revisited.to_numpy(dtype=float)
        prob = outcomes.p_revisit.to_numpy(dtype=float)
        which = np.minimum((prob * 10).astype(int), 9)
        calibration = pd.DataFrame(
            [{"p": prob[which == k].mean(), "y": y[which == k].mean()}
             for k in range(10) if (which == k).any()]
        )  # fmt: skip
        overall = y.mean() or 1.0
        lift = (outcomes.assign(y=y).groupby("decile").y.mean() / overall).rename("lift")
        lift = lift.rename_axis("decile").reset_index()
        unit = {"scale": {"domain": [0, 1]}}
        panels.append({
            "title": labels["calibration"], "width": 200, "height": 200,
            "layer": [
                {"data": {"values": [{"p": 0, "y": 0}, {"p": 1, "y": 1}]},
                 "mark": {"type": "line", "color": "grey", "strokeDash": [4, 4]},
                 "encoding": {"x": {"field": "p", "type": "quantitative"},
                              "y": {"field": "y", "type": "quantitative"}}},
                {"data": {"values": _values(calibration)},
                 "mark": {"type": "line", "point": True, "color": BLUE},
                 "encoding": {"x": {"field": "p", "type": "quantitative",
                                    "title": labels["probability"], **unit},
                              "y": {"field": "y", "type": "quantitative",
                                    "title": labels["observed"], **unit}}},
            ],
        })  # fmt: skip
        panels.append({
            "title": labels["lift_title"], "width": 200, "height": 200,
            "data": {"values": _values(lift)},
            "layer": [
                {"mark": {"type": "bar", "color": BLUE},
                 "encoding": {"x": {"field": "decile", "type": "ordinal",
                                    "title": labels["decile"]},
                              "y": {"field": "lift", "type": "quantitative",
                                    "title": labels["lift"]}}},
                {"mark": {"type": "rule", "color": "grey", "strokeDash": [4, 4]},
                 "encoding": {"y": {"datum": 1}}},
            ],
        })  # fmt: skip
        # The diagonal (observed = predicted) as a second series over the same x.
        plots.append(Plot("scatter", labels["calibration"], calibration.p.tolist(),
                          {labels["observed"]: calibration.y.tolist(),
                           labels["probability"]: calibration.p.tolist()},
                          x_title=labels["probability"], y_title=labels["observed"],
                          number_format="0.0%"))  # fmt: skip
        plots.append(Plot("column", labels["lift_title"], [int(d) for d in lift.decile],
                          {labels["lift"]: lift.lift.astype(float).tolist()},
                          x_title=labels["decile"], y_title=labels["lift"],
                          number_format="0.00"))  # fmt: skip
    return render({"hconcat": panels, "spacing": 28}, lang, plots)
