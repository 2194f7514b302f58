"""The report as a workbook: a summary sheet, then one sheet per section with its reading,
its chart and formatted tables (numbers stay numbers).

Charts are native Excel charts (bars, grouped columns, lines, a calibration scatter) over
a "chart data" block at the foot of the sheet: a marketer can restyle, filter or copy
them, and they are built from the chart's data without running the chart renderer or
rasterising anything. The heatmaps (the RFM grid, the segment migration) are tables with
a colour-scale conditional format, their highlighted columns outlined in red.

Written with XlsxWriter, which writes the XML out directly: the 50 workbooks of the
20k-customer demo take ~1.1 CPU-s instead of openpyxl's ~3.0, most of which was its XML
serialisation. Every cell is written by type: text with `write_string` (never read
as a formula, number or URL), numbers with `write_number`, a missing value as a blank
cell that keeps its format. Rows and columns are counted from 0, as XlsxWriter does.
"""

from __future__ import annotations

import math
from numbers import Real
from pathlib import Path
from typing import Any

from xlsxwriter import Workbook
from xlsxwriter.chart import Chart as XlsxChart
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from warehouse.report.model import Report, Section
from warehouse.report.vega import BLUE, HIGHLIGHT, Plot
from warehouse.spreadsheet import neutralise

FORMATS = {"int": "#,##0", "pct": "0.0%", "money": "#,##0.00", "num": "#,##0.##", "metric": "0.000"}
HEADER = {"bold": True, "pattern": 1, "bg_color": "#F0F3F6"}
CHART_DATA = {"en": "Chart data", "ru": "Данные графиков"}
# The colour ramp of the HTML's heatmaps ("blues"), stopped where black text still reads.
HEAT = {
    "type": "3_color_scale", "min_type": "min", "min_color": "#F7FBFF",
    "mid_type": "percentile", "mid_value": 50, "mid_color": "#C6DBEF",
    "max_type": "max", "max_color": "#4292C6",
}  # fmt: skip
MEDIUM = 2  # XlsxWriter's index of Excel's "medium" border
ROW_CM = 0.53  # a default row (15 pt) in centimetres: how many rows a chart covers
CHART_WIDTH_CM = 18.0
PX_PER_CM = 96 / 2.54  # XlsxWriter sizes charts in pixels at 96 dpi
OPTIONS = {
    # Charts read their data from the written cells at close: the whole sheet stays in
    # memory (constant_memory off); in_memory also spares the temporary file per sheet.
    "constant_memory": False,
    "in_memory": True,
    # Text is written as text, whatever it looks like (the defaults would turn "=…" into a
    # formula and "http…" into a link for `write`; we never call it, this is belt and braces).
    "strings_to_formulas": False,
    "strings_to_urls": False,
    "strings_to_numbers": False,
    # An infinite ratio becomes an error cell (#DIV/0!) rather than failing the workbook.
    "nan_inf_to_errors": True,
}


class Styles:
    """The workbook's cell formats, one per distinct set of properties: XlsxWriter writes
    each added format into the styles part, so a format is added once and reused."""

    def __init__(self, workbook: Workbook) -> None:
        self.workbook = workbook
        self.made: dict[tuple, Format] = {}

    def __call__(self, **properties: Any) -> Format | None:
        if not any(v is not None for v in properties.values()):
            return None
        key = tuple(sorted((k, v) for k, v in properties.items() if v is not None))
        if key not in self.made:
            self.made[key] = self.workbook.add_format(dict(key))
        return self.made[key]


def write(report: Report, path: Path) -> None:
    workbook = Workbook(str(path), OPTIONS)
    styles = Styles(workbook)
    summary = workbook.add_worksheet("Summary" if report.lang == "en" else "Сводка")
    _text(summary, 0, 0, report.title, styles(bold=True, font_size=14))
    _text(summary, 1, 0, report.subtitle)
    bold = styles(bold=True)
    for row, section in enumerate(report.sections, start=3):
        _text(summary, row, 0, section.title, bold)
        _text(summary, row, 1, section.reading)
    _width(summary, 0, 34)
    _width(summary, 1, 120)
    for section in report.sections:
        sheet = workbook.add_worksheet(section.title[:31].replace("/", "-"))
        _section(workbook, sheet, styles, section, report.lang)
    # XlsxWriter has no document language property (openpyxl wrote dc:language): dropped.
    workbook.close()


def _section(workbook: Workbook, sheet: Worksheet, styles: Styles, section: Section,
             lang: str) -> None:  # fmt: skip
    bold = styles(bold=True)
    _text(sheet, 0, 0, section.title, styles(bold=True, font_size=13))
    _text(sheet, 1, 0, section.reading)
    row = 3
    widths: dict[int, int] = {}
    charted: list[tuple[Plot, int]] = []  # (plot, anchor row): placed once its data is written
    for plot in section.chart.plots if section.chart else []:
        if plot.kind == "heatmap":
            row = _heatmap(sheet, styles, plot, row, widths)
        else:
            charted.append((plot, row))
            row += math.ceil(_height_cm(plot) / ROW_CM) + 2
    header = styles(**HEADER)
    for table in section.tables:
        _text(sheet, row, 0, table.caption, bold)
        row += 1
        for j, column in enumerate(table.columns):
            _text(sheet, row, j, column, header)
            widths[j] = max(widths.get(j, 8), len(str(column)))
        row += 1
        kinds = [(kind, styles(num_format=FORMATS.get(kind))) for kind in table.kinds]
        for values in table.rows:
            for j, (value, (kind, style)) in enumerate(zip(values, kinds, strict=True)):
                value = None if _missing(value) else value
                if value is None:
                    sheet.write_blank(row, j, None, style)
                elif kind == "text":
                    _text(sheet, row, j, value, style)
                else:
                    value = float(value)
                    sheet.write_number(row, j, value, style)
                widths[j] = max(widths.get(j, 8), min(len(str(value or "")), 50))
            row += 1
        row += 1
    if charted:
        _text(sheet, row, 0, CHART_DATA[lang], bold)
        row += 1
        for plot, anchor in charted:
            first = row
            row = _block(sheet, styles, plot, row, widths)
            chart = _chart(workbook, sheet.get_name(), plot, first)
            # Moves with its cells but keeps its size, like openpyxl's one-cell anchor.
            sheet.insert_chart(anchor, 0, chart, {"object_position": 2})
            row += 1
    for j, width in widths.items():
        _width(sheet, j, width + 2)


def _width(sheet: Worksheet, column: int, characters: int) -> None:
    """The column's width as Excel stores it (`characters` digits of the default font,
    padding included), as openpyxl wrote it: XlsxWriter's `set_column` would add the cell
    padding on top (34 → 34.71), 7 pixels a digit (Calibri 11) store the number as is."""
    sheet.set_column_pixels(column, column, 7 * characters)


def _text(sheet: Worksheet, row: int, column: int, value: object,
          style: Format | None = None) -> None:  # fmt: skip
    """A text cell: neutralised (a leading apostrophe before "=", "+", "-", "@"…) and
    written as a string, whatever it looks like."""
    sheet.write_string(row, column, str(neutralise(str(value))), style)


def _value(sheet: Worksheet, row: int, column: int, value: object, style: Format | None) -> None:
    """A chart's number (or a blank cell keeping the format when it is missing)."""
    number = _number(value)
    if number is None:
        sheet.write_blank(row, column, None, style)
    else:
        sheet.write_number(row, column, number, style)


def _block(sheet: Worksheet, styles: Styles, plot: Plot, row: int,
           widths: dict[int, int]) -> int:  # fmt: skip
    """The plot's data: a header (the x title, then one column per series) and a row per
    category. Returns the row after it."""
    header, number = styles(**HEADER), styles(num_format=plot.number_format)
    _text(sheet, row, 0, plot.x_title if plot.kind != "bar" else "", header)
    for j, name in enumerate(plot.series, start=1):
        _text(sheet, row, j, name, header)
        widths[j] = max(widths.get(j, 8), min(len(str(name)), 30))
    for i, category in enumerate(plot.categories, start=1):
        if category is None or isinstance(category, Real):
            _value(sheet, row + i, 0, category, number)  # the scatter's x, the lift's decile
        else:
            _text(sheet, row + i, 0, category)
        widths[0] = max(widths.get(0, 8), min(len(str(category)), 50))
        for j, values in enumerate(plot.series.values(), start=1):
            _value(sheet, row + i, j, values[i - 1], number)
    return row + len(plot.categories) + 1


def _heatmap(sheet: Worksheet, styles: Styles, plot: Plot, row: int,
             widths: dict[int, int]) -> int:  # fmt: skip
    """A table coloured by value (one scale over the whole table); highlighted columns
    outlined. Returns the row after it."""
    _text(sheet, row, 0, plot.title, styles(bold=True))
    row += 1
    header = styles(**HEADER)
    _text(sheet, row, 0, plot.title if not plot.x_title else f"{plot.y_title} \\ {plot.x_title}",
          header)  # fmt: skip
    for j, name in enumerate(plot.series, start=1):
        _text(sheet, row, j, name, header)
        widths[j] = max(widths.get(j, 8), min(len(str(name)), 24))
    hot = {j for j, name in enumerate(plot.series, start=1) if name in plot.highlight}
    last = row + len(plot.categories)
    for i, category in enumerate(plot.categories, start=1):
        _text(sheet, row + i, 0, category)
        widths[0] = max(widths.get(0, 8), min(len(str(category)), 40))
        for j, values in enumerate(plot.series.values(), start=1):
            outline = {}
            if j in hot:
                top, bottom = i == 1, row + i == last
                outline = {"left": MEDIUM, "right": MEDIUM, "left_color": HIGHLIGHT,
                           "right_color": HIGHLIGHT, "top": MEDIUM if top else None,
                           "top_color": HIGHLIGHT if top else None,
                           "bottom": MEDIUM if bottom else None,
                           "bottom_color": HIGHLIGHT if bottom else None}  # fmt: skip
            style = styles(num_format=plot.number_format, **outline)
            _value(sheet, row + i, j, values[i - 1], style)
    if plot.categories and plot.series:
        sheet.conditional_format(row + 1, 1, last, len(plot.series), HEAT)
    return last + 2


def _chart(workbook: Workbook, sheet: str, plot: Plot, first: int) -> XlsxChart:
    """A native chart over the data block whose header is on row `first`."""
    n, k = len(plot.categories), len(plot.series)
    if plot.kind == "scatter":
        # Points joined by a line, as openpyxl's "lineMarker" scatter drew them.
        chart = workbook.add_chart({"type": "scatter", "subtype": "straight_with_markers"})
    elif plot.kind == "line":
        chart = workbook.add_chart({"type": "line"})
    else:
        chart = workbook.add_chart({"type": "bar" if plot.kind == "bar" else "column"})
    for j, name in enumerate(plot.series, start=1):
        series: dict[str, Any] = {
            "name": [sheet, first, j],
            "categories": [sheet, first + 1, 0, first + n, 0],
            "values": [sheet, first + 1, j, first + n, j],
        }
        if plot.kind == "scatter":
            series["marker"] = {"type": "circle" if j == 1 else "none"}
            if j > 1:  # the diagonal: where observed equals predicted
                series["line"] = {"dash_type": "dash", "color": "#808080"}
        if plot.kind in ("bar", "column"):
            series["gap"] = 40
        if plot.kind == "bar" and j == 1:
            series["fill"] = {"color": BLUE}
            series["points"] = [{"fill": {"color": HIGHLIGHT}} if c in plot.highlight else None
                                for c in plot.categories]  # fmt: skip
        if plot.kind == "line":
            width = 3.2 if name in plot.highlight else 1.4  # as in the HTML's chart
            # XlsxWriter rounds a line's width to Excel's quarter points (1.5 and 3.25 pt).
            series["line"] = {"width": width}
            series["marker"] = {"type": "none"}
            series["smooth"] = False
        chart.add_series(series)
    if k == 1 and plot.kind != "scatter":
        chart.set_legend({"none": True})
    else:
        chart.set_legend({"position": "bottom"})
    # Titles are the report's own labels (XlsxWriter would read a title shaped like
    # "Sheet!A1" as a reference). No title: Excel names a one-series chart after its
    # series, as it did with openpyxl's charts.
    if plot.title:
        chart.set_title({"name": plot.title})
    # XlsxWriter's x axis is the horizontal one: a bar chart's value axis, every other
    # chart's categories (or the scatter's x values).
    if plot.kind == "bar":
        # Excel draws the first category at the bottom; the HTML lists it on top.
        chart.set_y_axis({"reverse": True})
        chart.set_x_axis({"num_format": plot.number_format, **_name(plot.x_title)})
    else:
        chart.set_x_axis(_name(plot.x_title))
        chart.set_y_axis({"num_format": plot.number_format, **_name(plot.y_title)})
    chart.set_size({"width": round(CHART_WIDTH_CM * PX_PER_CM),
                    "height": round(_height_cm(plot) * PX_PER_CM)})  # fmt: skip
    return chart


def _name(title: str) -> dict[str, str]:
    return {"name": title} if title else {}


def _height_cm(plot: Plot) -> float:
    if plot.kind == "bar":  # a bar per category, as the HTML's 22-pixel steps
        return max(6.0, 0.6 * len(plot.categories) + 2.0)
    return 7.5


def _number(value: object) -> float | None:
    return None if value is None or _missing(value) else float(value)


def _missing(value: object) -> bool:
    try:
        return value != value  # NaN
    except (TypeError, ValueError):
        return False
