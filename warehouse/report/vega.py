"""A chart of the report: a Vega-Lite specification rendered by vl-convert (the Vega
team's Rust renderer, a wheel with no browser and no network) to a scenegraph, which the
PDF draws as vectors (`vector.py`) and from which the HTML's SVG is written (`svg.py`).
Each chart also keeps its data as `Plot`s, from which the XLSX builds native Excel charts
and colour-scaled tables without running Vega at all, and its legend as `Key`s, which the
HTML and the PDF draw. Each distinct spec is compiled from Vega-Lite to Vega once per
process with its data as named datasets, and each chart's values are put into the
compiled spec's datasets (as data, not text): fifty businesses' charts of one kind share
one compilation.

Numbers in axes follow the report's locale (d3-format's ru-RU and en-US). Text is
measured and drawn in Liberation Sans, which vl-convert bundles (Cyrillic included), so
the layout is the same on every machine; browsers without it fall back along the family
list. A font registered from a directory (DejaVu) made every chart about twice as slow to
lay out, so DejaVu is only a fallback for glyphs Liberation lacks. vl-convert measures
each text by shaping it (`benchmarks/profile_report.py` measures how much): what a chart
writes costs more than what it draws.

This module does not import pandas: the processes that only write reports (HTML, XLSX,
PDF) import it, and the charts' builders (`charts.py`) live apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property, lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import vl_convert

from warehouse.report import svg

HIGHLIGHT = "#c0392b"
BLUE = "#2c7fb8"
ORANGE = "#f58518"
# Series colours: Vega's "tableau10", then two more so that the eleven RFM segments of a
# trend get eleven colours.
PALETTE = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2",
           "#ff9da6", "#9d755d", "#bab0ac", "#1b4f72", "#7d6608")  # fmt: skip
FONT = "Liberation Sans, Arial, Helvetica, sans-serif"
FORMAT_LOCALES = {"ru": "ru-RU", "en": "en-US"}
CONFIG = {
    # No ARIA description per mark: the HTML labels each chart as a whole (role="img"
    # with the section's reading), and writing hundreds of descriptions cost ~15 % of
    # every SVG.
    "aria": False,
    "font": FONT,
    "view": {"stroke": None},
    "axis": {"labelFontSize": 10, "titleFontSize": 11, "grid": False},
    "title": {"fontSize": 12},
}
# The fonts matplotlib ships (DejaVu, with Cyrillic and ₽): the PDF's text font and the
# charts' fallback.
# Found without importing matplotlib, which would add to every report worker's start.
FONT_DIR = Path(find_spec("matplotlib").submodule_search_locations[0], "mpl-data", "fonts", "ttf")
_SIZE = re.compile(r'<svg[^>]*?width="([\d.]+)" height="([\d.]+)"')


@dataclass(frozen=True)
class Plot:
    """A chart's data in a renderer-neutral form, for a native (editable) Excel chart:
    `kind` is "bar" (horizontal), "column" (grouped), "line", "scatter" (x = the
    categories) or "heatmap" (rows = the categories, one column per series). `highlight`
    names the categories (bar), series (line) or columns (heatmap) the chart marks red."""

    kind: str
    title: str
    categories: list[Any]
    series: dict[str, list[float]]
    x_title: str = ""
    y_title: str = ""
    highlight: tuple[str, ...] = ()
    number_format: str = "#,##0"


@dataclass(frozen=True)
class Key:
    """A legend entry. The HTML (a wrapping list above the chart) and the PDF (a line
    under it) draw a chart's legend, not Vega, which shapes every legend label to lay the
    legend out (text is most of a chart's layout time); `bold` marks the highlighted
    series."""

    label: str
    colour: str
    bold: bool = False


@dataclass(eq=False)
class Chart:
    """One chart: a Vega-Lite `spec` whose inline datasets are named (`values_0`, …) and
    held apart in `datasets`, and the same data as `plots` for native Excel charts. Vega
    runs on first use of `svg` (the HTML inlines it; its size is `width` × `height` CSS
    pixels) or `scenegraph` (the PDF draws it as vectors): a workbook-only report never
    starts the renderer."""

    spec: dict[str, Any]
    lang: str
    plots: list[Plot] = field(default_factory=list)
    datasets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    legend: list[Key] = field(default_factory=list)

    @cached_property
    def vega(self) -> dict[str, Any]:
        """The compiled Vega spec with this chart's data: the compilation is shared by
        every chart of the same spec (the same kind, labels and order), the values go into
        its named datasets as data, never into the spec's text."""
        compiled = _compile(json.dumps(self.spec, sort_keys=True, ensure_ascii=False))
        data = [{**d, "values": self.datasets[d["name"]]} if d.get("name") in self.datasets
                else d for d in compiled["data"]]  # fmt: skip
        return {**compiled, "data": data}

    @cached_property
    def svg(self) -> str:
        """Written from the scenegraph (one Vega run serves the HTML and the PDF, and it
        is cheaper than Vega's SVG call), or by Vega where `svg.write` cannot be faithful."""
        try:
            return svg.write(self.scenegraph, self.vega.get("background"))
        except svg.NotWritable:
            return self.vega_svg

    @cached_property
    def vega_svg(self) -> str:
        """The SVG as Vega's own renderer writes it."""
        _fonts()
        return vl_convert.vega_to_svg(self.vega, format_locale=FORMAT_LOCALES[self.lang],
                                      allowed_base_urls=[])  # fmt: skip

    @cached_property
    def _size(self) -> tuple[int, int]:
        width, height = (round(float(v)) for v in _SIZE.search(self.svg).groups())
        return width, height

    @property
    def width(self) -> int:
        return self._size[0]

    @property
    def height(self) -> int:
        return self._size[1]

    @cached_property
    def scenegraph(self) -> dict[str, Any]:
        _fonts()
        return vl_convert.vega_to_scenegraph(self.vega, format_locale=FORMAT_LOCALES[self.lang],
                                             allowed_base_urls=[])  # fmt: skip


@lru_cache(maxsize=256)
def _compile(spec: str) -> dict[str, Any]:
    """Vega-Lite → Vega once per distinct spec (without its data) and process: compiling
    was about an eighth of each chart. Callers copy before changing the result."""
    compiled = vl_convert.vegalite_to_vega(json.loads(spec), config=CONFIG)
    names = [d.get("name") for d in compiled["data"]]
    if len(set(names)) != len(names):
        raise RuntimeError(f"Vega-Lite compiled datasets with the same name: {names}")
    return compiled


@cache
def _fonts() -> None:
    vl_convert.register_font_directory(str(FONT_DIR))


def warm_up() -> None:
    """Load the fonts and start the renderer's JavaScript engine (its first chart costs
    about a second), so a worker process is ready before its first business."""
    chart = render({"data": {"values": [{"x": 1}]}, "mark": "point",
                    "encoding": {"x": {"field": "x", "type": "quantitative"}}}, "en")  # fmt: skip
    if "<svg" not in chart.svg:
        raise RuntimeError("vl-convert rendered no SVG")


def render(spec: dict[str, Any], lang: str, plots: Sequence[Plot] = (),
           legend: Sequence[Key] = ()) -> Chart:  # fmt: skip
    """A chart of a Vega-Lite spec (inline data only: no URL may be fetched), rendered
    when first shown. Each inline `{"values": [...]}` becomes a named dataset, so charts
    that differ only in their data share one compiled Vega spec."""
    datasets: dict[str, list[dict[str, Any]]] = {}
    spec = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            **_name_datasets(spec, datasets)}  # fmt: skip
    return Chart(spec=spec, lang=lang, plots=list(plots), datasets=datasets,
                 legend=list(legend))  # fmt: skip


def _name_datasets(node: Any, datasets: dict[str, list[dict[str, Any]]]) -> Any:
    """`node` with every inline dataset replaced by a name, its values put in `datasets`."""
    if isinstance(node, list):
        return [_name_datasets(item, datasets) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "data" and isinstance(value, dict) and "values" in value:
            if set(value) != {"values"} or not isinstance(value["values"], list):
                raise ValueError(f"inline data must be a list of values only: {set(value)}")
            name = f"values_{len(datasets)}"
            datasets[name] = value["values"]
            out[key] = {"name": name}
        else:
            out[key] = _name_datasets(value, datasets)
    return out
