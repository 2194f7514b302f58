"""A Vega scenegraph drawn on a reportlab canvas: the PDF's charts as vector graphics.

Vega (inside vl-convert) lays the chart out — scales, axes, legends, label placement —
exactly as for the HTML's SVG, and hands back the scenegraph: positioned rectangles,
rules, lines, symbols and texts. Drawing those with reportlab is a few canvas calls per
item, so the PDF gets sharp charts at any zoom without rasterising a PNG (which cost more
than the chart's layout) and without a browser.

Text is set in the PDF's own font (DejaVu Sans, which has Cyrillic and ₽). Vega measured
it in Liberation Sans, whose glyphs are about 12 % narrower, so chart text is condensed
by that much: labels keep the room Vega gave them. Texts longer than their `limit` are
cut with an ellipsis, as Vega's own renderers do.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

from reportlab.lib import colors
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable

# DejaVu Sans glyphs are wider than Liberation Sans (Arial metrics): digits 636 vs 556
# units, lower case ~610 vs ~540. Condensing to 88 % keeps Vega's measured label widths.
HORIZONTAL_SCALE = 88.0

__all__ = ["VectorChart", "draw"]


class VectorChart(Flowable):
    """A scenegraph (`vl_convert.vega*_to_scenegraph`) as a flowable of `width` points;
    the height keeps the chart's aspect ratio."""

    def __init__(self, scenegraph: dict[str, Any], width: float, fonts: tuple[str, str]):
        super().__init__()
        self.scenegraph = scenegraph
        self.fonts = fonts
        self.width = width
        self.height = width * scenegraph["height"] / scenegraph["width"]

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        draw(self.canv, self.scenegraph, 0, 0, self.width, self.fonts)


def draw(canvas: Canvas, scenegraph: dict[str, Any], x: float, y: float, width: float,
         fonts: tuple[str, str]) -> None:  # fmt: skip
    """Draw `scenegraph` with its bottom-left corner at (x, y), `width` points wide; texts
    in `fonts` (regular, bold), registered with reportlab."""
    scale = width / scenegraph["width"]
    canvas.saveState()
    # Vega's y axis points down: flip once here, and flip each text back upright.
    canvas.translate(x, y + scenegraph["height"] * scale)
    canvas.scale(scale, -scale)
    canvas.translate(*scenegraph.get("origin", (0, 0)))
    canvas.setLineCap(0)
    canvas.setLineJoin(0)
    _Painter(canvas, fonts).mark(scenegraph["scenegraph"])
    canvas.restoreState()


@cache
def _colour(value: str) -> colors.Color | None:
    if value in ("transparent", "none"):
        return None
    if value.startswith("rgb"):
        parts = [float(p) for p in value[value.index("(") + 1 : value.rindex(")")].split(",")]
        alpha = parts[3] if len(parts) > 3 else 1.0
        return colors.Color(parts[0] / 255, parts[1] / 255, parts[2] / 255, alpha)
    if value.startswith("#") and len(value) == 4:  # CSS shorthand; reportlab reads #888 as #000888
        value = "#" + "".join(ch * 2 for ch in value[1:])
    return colors.toColor(value)


class _Painter:
    def __init__(self, canvas: Canvas, fonts: tuple[str, str]):
        self.c = canvas
        self.regular, self.bold = fonts

    def mark(self, mark: dict[str, Any]) -> None:
        items = mark.get("items") or []
        kind = mark.get("marktype")
        if kind is None:  # the root: a group item list without a mark type
            for item in items:
                self.group(item)
            return
        draw = getattr(self, f"_{kind}", None)
        if draw is None:
            raise ValueError(f"the PDF renderer does not draw Vega {kind!r} marks")
        if kind == "line":
            self._line(items)
            return
        for item in items:
            draw(item)

    def _group(self, item: dict[str, Any]) -> None:
        self.group(item)

    def group(self, item: dict[str, Any]) -> None:
        c = self.c
        c.saveState()
        c.translate(item.get("x", 0) or 0, item.get("y", 0) or 0)
        width, height = item.get("width") or 0, item.get("height") or 0
        if (width or height) and self._paint(item):
            c.rect(0, 0, width, height, stroke=self._stroking, fill=self._filling)
        if item.get("clip"):
            path = c.beginPath()
            path.rect(0, 0, width, height)
            c.clipPath(path, stroke=0, fill=0)
        # Vega draws a group's marks by zindex, keeping their order among equals.
        for mark in sorted(item.get("items") or [], key=lambda m: m.get("zindex") or 0):
            self.mark(mark)
        c.restoreState()

    def _paint(self, item: dict[str, Any], default_stroke: str | None = None) -> bool:
        """Set fill and stroke from `item`; whether there is anything to draw."""
        c = self.c
        opacity = item.get("opacity", 1.0)
        opacity = 1.0 if opacity is None else opacity
        fill = item.get("fill")
        fill = _colour(fill) if isinstance(fill, str) else None
        stroke = item.get("stroke", default_stroke)
        stroke = _colour(stroke) if isinstance(stroke, str) else None
        width = item.get("strokeWidth")
        width = 1.0 if width is None else width
        self._filling = int(fill is not None)
        self._stroking = int(stroke is not None and width > 0)
        if fill is not None:
            c.setFillColor(fill)
            c.setFillAlpha(fill.alpha * opacity * _or(item.get("fillOpacity"), 1.0))
        if self._stroking:
            c.setStrokeColor(stroke)
            c.setStrokeAlpha(stroke.alpha * opacity * _or(item.get("strokeOpacity"), 1.0))
            c.setLineWidth(width)
            c.setDash(item.get("strokeDash") or [])
        return bool(self._filling or self._stroking)

    def _rect(self, item: dict[str, Any]) -> None:
        if self._paint(item):
            x, y = item.get("x", 0) or 0, item.get("y", 0) or 0
            width = item.get("width", (item.get("x2") or x) - x) or 0
            height = item.get("height", (item.get("y2") or y) - y) or 0
            self.c.rect(x, y, width, height, stroke=self._stroking, fill=self._filling)

    def _rule(self, item: dict[str, Any]) -> None:
        if self._paint({**item, "fill": None}, default_stroke="#000"):
            x, y = item.get("x", 0) or 0, item.get("y", 0) or 0
            x2, y2 = item.get("x2", x), item.get("y2", y)
            self.c.line(x, y, x if x2 is None else x2, y if y2 is None else y2)

    def _line(self, items: list[dict[str, Any]]) -> None:
        if not items or not self._paint({**items[0], "fill": None}):
            return
        path = self.c.beginPath()
        pen_down = False
        for point in items:
            if point.get("defined") is False:
                pen_down = False
                continue
            if pen_down:
                path.lineTo(point["x"], point["y"])
            else:
                path.moveTo(point["x"], point["y"])
                pen_down = True
        self.c.drawPath(path, stroke=1, fill=0)

    def _symbol(self, item: dict[str, Any]) -> None:
        if not self._paint(item):
            return
        x, y = item.get("x", 0) or 0, item.get("y", 0) or 0
        size = item.get("size")
        size = 64 if size is None else size
        shape = item.get("shape") or "circle"
        c = self.c
        if shape == "circle":
            c.circle(x, y, math.sqrt(size) / 2, stroke=self._stroking, fill=self._filling)
        elif shape == "square":
            side = math.sqrt(size)
            c.rect(x - side / 2, y - side / 2, side, side, stroke=self._stroking,
                   fill=self._filling)  # fmt: skip
        elif shape == "stroke":
            half = math.sqrt(size) / 2
            c.line(x - half, y, x + half, y)
        else:
            raise ValueError(f"the PDF renderer does not draw {shape!r} symbols")

    def _text(self, item: dict[str, Any]) -> None:
        text = item.get("text")
        if text is None or text == "":
            return
        fill = item.get("fill", "#000")
        if not self._paint({"fill": fill, "opacity": item.get("opacity"),
                            "fillOpacity": item.get("fillOpacity")}):  # fmt: skip
            return
        size = float(item.get("fontSize") or 11)
        font = self.bold if item.get("fontWeight") in ("bold", 600, 700, 800, 900) else self.regular
        if isinstance(text, list):
            lines = [str(t) for t in text]
        else:
            text = str(text)
            lines = text.split(item["lineBreak"]) if item.get("lineBreak") else [text]
        limit = item.get("limit") or 0
        if limit:
            lines = [_truncate(line, font, size, limit) for line in lines]
        line_height = item.get("lineHeight") or size + 2
        align = item.get("align") or "left"
        c = self.c
        c.saveState()
        c.translate((item.get("x") or 0) + (item.get("dx") or 0),
                    (item.get("y") or 0) + (item.get("dy") or 0))  # fmt: skip
        if item.get("angle"):
            c.rotate(item["angle"])
        # Vega's own baseline offsets (vega-scenegraph `offset`), the same in every renderer.
        c.translate(0, round(_BASELINE.get(item.get("baseline"), 0.0) * size))
        c.scale(1, -1)
        for i, line in enumerate(lines):
            width = stringWidth(line, font, size) * HORIZONTAL_SCALE / 100
            shift = {"center": -width / 2, "right": -width}.get(align, 0.0)
            shown = c.beginText(shift, -i * line_height)
            shown.setFont(font, size)
            shown.setHorizScale(HORIZONTAL_SCALE)
            shown.textOut(line)
            c.drawText(shown)
        c.restoreState()


_BASELINE = {"top": 0.79, "middle": 0.30, "bottom": -0.21}


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _truncate(text: str, font: str, size: float, limit: float) -> str:
    scale = HORIZONTAL_SCALE / 100
    if stringWidth(text, font, size) * scale <= limit:
        return text
    while text and stringWidth(text + "…", font, size) * scale > limit:
        text = text[:-1]
    return text + "…"
