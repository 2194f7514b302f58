"""The report as a PDF with reportlab (a pure-Python wheel: no browser, no system
library): a title block with each section's reading, then each section with its chart
and its tables, which flow over pages with a repeated header. A chart is the HTML's Vega
layout drawn as vector graphics (`vector.py`): sharp in print and at any zoom, and
cheaper than rasterising it.

Text is set in DejaVu Sans, which matplotlib ships, so Cyrillic and ₽ render."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    TableStyle,
)
from reportlab.platypus import Table as PdfTable

from warehouse.report.model import Report, Table, fmt
from warehouse.report.vector import VectorChart
from warehouse.report.vega import FONT_DIR, Key

MAX_COLUMNS = 9
# reportlab's default cell padding; the cells' leading, the same for strings and Paragraphs.
CELL_PADDING = 6
CELL_LEADING = 8.5
WIDTH = A4[0] - 30 * mm


@cache
def _fonts() -> tuple[str, str]:
    folder = FONT_DIR
    pdfmetrics.registerFont(TTFont("DejaVuSans", str(folder / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(folder / "DejaVuSans-Bold.ttf")))
    # So that <b> in a Paragraph sets the bold face (without the family it stayed regular).
    pdfmetrics.registerFontFamily("DejaVuSans", normal="DejaVuSans", bold="DejaVuSans-Bold",
                                  italic="DejaVuSans", boldItalic="DejaVuSans-Bold")  # fmt: skip
    return "DejaVuSans", "DejaVuSans-Bold"


def _styles() -> dict[str, ParagraphStyle]:
    regular, bold = _fonts()
    return {
        "title": ParagraphStyle("title", fontName=bold, fontSize=17, leading=21),
        "subtitle": ParagraphStyle("subtitle", fontName=regular, fontSize=10, leading=13,
                                   textColor=colors.HexColor("#5b6773"), spaceAfter=8),
        "h2": ParagraphStyle("h2", fontName=bold, fontSize=13, leading=16, spaceBefore=6,
                             spaceAfter=3),
        "body": ParagraphStyle("body", fontName=regular, fontSize=9.5, leading=12.5,
                               spaceAfter=4),
        "cell": ParagraphStyle("cell", fontName=regular, fontSize=7, leading=CELL_LEADING),
        "head": ParagraphStyle("head", fontName=bold, fontSize=7, leading=8.5),
        "legend": ParagraphStyle("legend", fontName=regular, fontSize=8, leading=11,
                                 spaceBefore=2, spaceAfter=4),
    }  # fmt: skip


def write(report: Report, path: Path) -> None:
    styles = _styles()
    story: list = [
        Paragraph(escape(report.title), styles["title"]),
        Paragraph(escape(report.subtitle), styles["subtitle"]),
    ]
    for section in report.sections:
        story.append(Paragraph(
            f"<b>{escape(section.title)}</b> — {escape(section.reading)}", styles["body"]
        ))  # fmt: skip
    for section in report.sections:
        story.append(PageBreak())
        head = [Paragraph(escape(section.title), styles["h2"]),
                Paragraph(escape(section.reading), styles["body"])]  # fmt: skip
        if section.chart:
            scenegraph = section.chart.scenegraph
            width, height = scenegraph["width"], scenegraph["height"]
            scale = min(WIDTH / width, 110 * mm / height)
            head.append(VectorChart(scenegraph, width * scale, _fonts()))
            if section.chart.legend:
                head.append(Paragraph(_legend(section.chart.legend), styles["legend"]))
        story.append(KeepTogether(head))
        for table in section.tables:
            story.append(Spacer(1, 4))
            story.append(_table(table, report, styles))
    document = SimpleDocTemplate(
        str(path), pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=14 * mm,
        bottomMargin=14 * mm, title=report.title, lang=report.lang,
    )  # fmt: skip
    document.build(story)


def _legend(keys: list[Key]) -> str:
    """The chart's legend as one wrapping line: a coloured square and the label per key,
    each entry kept on one line (no-break spaces)."""
    entries = []
    for key in keys:
        label = escape(key.label).replace(" ", "\u00a0")
        entries.append(f'<font color="{key.colour}">\u25a0</font>\u00a0'
                       + (f"<b>{label}</b>" if key.bold else label))  # fmt: skip
    return "\u2003 ".join(entries)


def _table(table: Table, report: Report, styles: dict[str, ParagraphStyle]) -> PdfTable:
    columns = table.columns[:MAX_COLUMNS]
    kinds = table.kinds[:MAX_COLUMNS]
    widths = _widths(kinds)
    rows: list[list] = [[Paragraph(escape(str(c)), styles["head"]) for c in columns]]
    for row in table.rows:
        cells = []
        for v, k, width in zip(row[:MAX_COLUMNS], kinds, widths, strict=False):
            text = fmt(v, k, report.lang, report.currency)
            # A Paragraph only where the text must wrap: a one-line cell as a plain
            # string looks the same and costs a fraction (most of a PDF's table time).
            if k == "text" and not _fits(text, width):
                cells.append(Paragraph(escape(text), styles["cell"]))
            else:
                cells.append(text)
        rows.append(cells)
    numeric = [i for i, k in enumerate(kinds) if k != "text"]
    shown = PdfTable(rows, repeatRows=1, hAlign="LEFT", colWidths=widths)
    style = [
        ("FONT", (0, 0), (-1, -1), _fonts()[0], 7, CELL_LEADING),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f0f3f6")),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#dde3e8")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]
    style += [("ALIGN", (i, 1), (i, -1), "RIGHT") for i in numeric]
    shown.setStyle(TableStyle(style))
    return shown


def _fits(text: str, width: float) -> bool:
    """Whether `text` fits on one line of a cell `width` wide (less its padding)."""
    return "\n" not in text and stringWidth(text, _fonts()[0], 7) <= width - 2 * CELL_PADDING


def _widths(kinds: list[str]) -> list[float]:
    """Text columns take twice a number column's width; together the page's width."""
    weights = [2.0 if k == "text" else 1.0 for k in kinds]
    return [WIDTH * w / sum(weights) for w in weights]
