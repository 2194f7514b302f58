"""A Vega scenegraph written as SVG markup, the way Vega's own SVG renderer writes it.

A report in HTML and PDF needs each chart's SVG and its scenegraph; Vega lays a chart out
once per call, and the SVG call cost about 1.5 times the scenegraph call. Writing the SVG
from the scenegraph takes a millisecond, so a chart runs Vega once for both formats.

The markup follows vega-scenegraph's SVG renderer for the marks the report draws (group,
rect, rule, line, symbol, text): the same positions, baseline offsets (`vector._BASELINE`),
line breaks, rotation and paint, so a browser draws the same picture (a test rasterises
both and compares the pixels). What this writer cannot reproduce faithfully it refuses
with `NotWritable`, and the caller asks Vega for the SVG: another mark type or symbol
shape, and a text that may be longer than its `limit` (Vega cuts it with an ellipsis by
its font's metrics; this module only proves a text short enough, measured in DejaVu Sans,
whose glyphs are wider than Liberation Sans', the font Vega measures with).
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from warehouse.report.vector import _BASELINE

__all__ = ["NotWritable", "write"]

_ANCHOR = {"left": "start", "center": "middle", "right": "end"}


class NotWritable(ValueError):
    """The scenegraph has something only Vega's renderer draws faithfully."""


def write(scenegraph: dict[str, Any], background: str | None) -> str:
    """The SVG document of a `vl_convert.vega_to_scenegraph` result on `background`."""
    width, height = scenegraph["width"], scenegraph["height"]
    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'version="1.1" class="marks" width="{_n(width)}" height="{_n(height)}" '
        f'viewBox="0 0 {_n(width)} {_n(height)}">'
    ]
    if background:
        fill = quoteattr(background)
        out.append(f'<rect width="{_n(width)}" height="{_n(height)}" fill={fill}/>')
    x, y = scenegraph.get("origin") or (0, 0)
    out.append(f'<g fill="none" stroke-miterlimit="10" transform="translate({_n(x)},{_n(y)})">')
    _mark(scenegraph["scenegraph"], out)
    out.append("</g></svg>")
    return "".join(out)


def _n(value: float) -> str:
    """A number as JavaScript prints it (3, 2.5, 0.1), which is how Vega writes them."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _mark(mark: dict[str, Any], out: list[str]) -> None:
    kind = mark.get("marktype")
    items = mark.get("items") or []
    role = mark.get("role") or "mark"
    out.append(f'<g class="mark-{kind} role-{role}">')
    if kind == "group":
        for item in items:
            _group(item, out)
    elif kind == "line":
        _line(items, out)
    else:
        draw = _DRAW.get(kind)
        if draw is None:
            raise NotWritable(f"Vega {kind!r} marks")
        for item in items:
            draw(item, out)
    out.append("</g>")


def _group(item: dict[str, Any], out: list[str]) -> None:
    out.append(f'<g transform="translate({_n(item.get("x") or 0)},{_n(item.get("y") or 0)})">')
    width, height = item.get("width") or 0, item.get("height") or 0
    if item.get("clip"):
        raise NotWritable("clipped groups")
    # A transparent background draws nothing; Vega writes it without a fill.
    paint = _paint({**item, "fill": None} if item.get("fill") == "transparent" else item)
    if (width or height) and paint:
        out.append(f'<path d="M0,0h{_n(width)}v{_n(height)}h{_n(-width)}Z"{paint}/>')
    out.append("<g>")
    # Vega draws a group's marks by zindex, keeping their order among equals.
    for mark in sorted(item.get("items") or [], key=lambda m: m.get("zindex") or 0):
        _mark(mark, out)
    out.append("</g></g>")


def _paint(item: dict[str, Any], stroke_default: str | None = None) -> str:
    """The presentation attributes Vega's SVG renderer writes for an item."""
    attrs = []
    fill = item.get("fill")
    if isinstance(fill, str):
        attrs.append(f" fill={quoteattr(fill)}")
    if item.get("fillOpacity") is not None:
        attrs.append(f' fill-opacity="{_n(item["fillOpacity"])}"')
    stroke = item.get("stroke", stroke_default)
    if isinstance(stroke, str):
        attrs.append(f" stroke={quoteattr(stroke)}")
    if item.get("strokeWidth") is not None:
        attrs.append(f' stroke-width="{_n(item["strokeWidth"])}"')
    if item.get("strokeOpacity") is not None:
        attrs.append(f' stroke-opacity="{_n(item["strokeOpacity"])}"')
    if item.get("strokeDash"):
        attrs.append(f' stroke-dasharray="{",".join(_n(d) for d in item["strokeDash"])}"')
    if item.get("strokeCap"):
        attrs.append(f" stroke-linecap={quoteattr(item['strokeCap'])}")
    if item.get("opacity") is not None:
        attrs.append(f' opacity="{_n(item["opacity"])}"')
    return "".join(attrs)


def _rect(item: dict[str, Any], out: list[str]) -> None:
    if item.get("cornerRadius"):
        raise NotWritable("rounded rectangles")
    x, y = item.get("x") or 0, item.get("y") or 0
    width = item.get("width", (item.get("x2") or x) - x) or 0
    height = item.get("height", (item.get("y2") or y) - y) or 0
    out.append(f'<path d="M{_n(x)},{_n(y)}h{_n(width)}v{_n(height)}h{_n(-width)}Z"'
               f"{_paint(item)}/>")  # fmt: skip


def _rule(item: dict[str, Any], out: list[str]) -> None:
    x, y = item.get("x") or 0, item.get("y") or 0
    x2 = x if item.get("x2") is None else item["x2"]
    y2 = y if item.get("y2") is None else item["y2"]
    out.append(f'<line transform="translate({_n(x)},{_n(y)})" x2="{_n(x2 - x)}" '
               f'y2="{_n(y2 - y)}"{_paint({**item, "fill": None}, "#000")}/>')  # fmt: skip


def _line(items: list[dict[str, Any]], out: list[str]) -> None:
    if not items:
        return
    if (items[0].get("interpolate") or "linear") != "linear":
        raise NotWritable("interpolated lines")
    path, pen_down = [], False
    for point in items:
        if point.get("defined") is False:
            pen_down = False
            continue
        # d3-shape writes line coordinates to three decimals; rectangles keep them all.
        x, y = round(point["x"], 3), round(point["y"], 3)
        path.append(f"{'L' if pen_down else 'M'}{_n(x)},{_n(y)}")
        pen_down = True
    if path:
        out.append(f'<path d="{"".join(path)}"{_paint({**items[0], "fill": None})}/>')


def _symbol(item: dict[str, Any], out: list[str]) -> None:
    size = item.get("size")
    size = 64 if size is None else size
    shape = item.get("shape") or "circle"
    if shape == "circle":
        r = _n(round(math.sqrt(size) / 2, 3))
        d = f"M{r},0A{r},{r},0,1,1,-{r},0A{r},{r},0,1,1,{r},0"
    elif shape == "square":
        s = _n(round(math.sqrt(size), 3))
        h = _n(round(math.sqrt(size) / 2, 3))
        d = f"M-{h},-{h}h{s}v{s}h-{s}Z"
    elif shape == "stroke":
        h = _n(round(math.sqrt(size) / 2, 3))
        d = f"M-{h},0L{h},0"
    else:
        raise NotWritable(f"{shape!r} symbols")
    x, y = item.get("x") or 0, item.get("y") or 0
    out.append(f'<path transform="translate({_n(x)},{_n(y)})" d="{d}"{_paint(item)}/>')


def _text(item: dict[str, Any], out: list[str]) -> None:
    text = item.get("text")
    if text is None or text == "":
        return
    if item.get("radius") or item.get("theta") or item.get("dir") or item.get("ellipsis"):
        raise NotWritable("polar, directed or custom-ellipsis texts")
    if isinstance(text, list):
        lines = [str(t) for t in text]
    else:
        text = str(text)
        lines = text.split(item["lineBreak"]) if item.get("lineBreak") else [text]
    size = item.get("fontSize")
    size = 11 if size is None else size
    limit = item.get("limit") or 0
    if limit and any(_wider_bound(line, size) > limit for line in lines):
        raise NotWritable("a text that may be cut at its limit")
    x, y = item.get("x") or 0, item.get("y") or 0
    dx = item.get("dx") or 0
    dy = (item.get("dy") or 0) + round(_BASELINE.get(item.get("baseline"), 0.0) * size)
    angle = item.get("angle") or 0
    if angle:
        transform = f"translate({_n(x)},{_n(y)}) rotate({_n(angle)})"
        if dx or dy:
            transform += f" translate({_n(dx)},{_n(dy)})"
    else:
        transform = f"translate({_n(x + dx)},{_n(y + dy)})"
    attrs = [f'<text text-anchor="{_ANCHOR.get(item.get("align"), "start")}" '
             f'transform="{transform}" font-family={quoteattr(item.get("font") or "sans-serif")} '
             f'font-size="{_n(size)}px"']  # fmt: skip
    for key, name in (("fontStyle", "font-style"), ("fontVariant", "font-variant"),
                      ("fontWeight", "font-weight")):  # fmt: skip
        if item.get(key) is not None:
            attrs.append(f" {name}={quoteattr(str(item[key]))}")
    attrs.append(_paint(item))
    attrs.append(">")
    out.append("".join(attrs))
    if len(lines) == 1:
        out.append(escape(lines[0]))
    else:
        height = item.get("lineHeight") or size + 2
        out.append(f"<tspan>{escape(lines[0])}</tspan>")
        out.extend(f'<tspan x="0" dy="{_n(height)}">{escape(line)}</tspan>' for line in lines[1:])
    out.append("</text>")


@cache
def _dejavu() -> str:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    from warehouse.report.vega import FONT_DIR

    pdfmetrics.registerFont(TTFont("DejaVuSans", str(FONT_DIR / "DejaVuSans.ttf")))
    return "DejaVuSans"


def _wider_bound(text: str, size: float) -> float:
    """An upper bound of `text`'s width in Liberation Sans (bold included): DejaVu Sans is
    wider glyph by glyph, plus a tenth for safety."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    return stringWidth(text, _dejavu(), size) * 1.1


_DRAW = {"rect": _rect, "rule": _rule, "symbol": _symbol, "text": _text}
