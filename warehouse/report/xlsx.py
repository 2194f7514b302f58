"""The report as a workbook: a summary sheet, then one sheet per section with its reading,
its chart and formatted tables (numbers stay numbers).

Charts are native Excel charts (bars, grouped columns, lines, a calibration scatter) over
a "chart data" block at the foot of the sheet: a marketer can restyle, filter or copy
them, and they are built from the chart's data without running the chart renderer or
rasterising anything. The heatmaps (the RFM grid, the segment migration) are tables with
a colour-scale conditional format, their highlighted columns outlined in red.
"""

from __future__ import annotations

import math
from pathlib import Path

from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.chart import BarChart, LineChart, Reference, ScatterChart, Series
from openpyxl.chart.marker import DataPoint, Marker
from openpyxl.formatting.rule import ColorScaleRule
from openpyxl.styles import Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from warehouse.exports import neutralise
from warehouse.report.charts import BLUE, HIGHLIGHT, Plot
from warehouse.report.model import Report, Section

FORMATS = {"int": "#,##0", "pct": "0.0%", "money": "#,##0.00", "num": "#,##0.##", "metric": "0.000"}
HEADER_FILL = PatternFill("solid", fgColor="F0F3F6")
CHART_DATA = {"en": "Chart data", "ru": "Данные графиков"}
# The colour ramp of the HTML's heatmaps ("blues"), stopped where black text still reads.
HEAT = ColorScaleRule(
    start_type="min", start_color="F7FBFF", mid_type="percentile", mid_value=50,
    mid_color="C6DBEF", end_type="max", end_color="4292C6",
)  # fmt: skip
OUTLINE = Side(style="medium", color=HIGHLIGHT[1:])
ROW_CM = 0.53  # a default row (15 pt) in centimetres: how many rows a chart covers
CHART_WIDTH_CM = 18.0
EMU_PER_PT = 12700


def write(report: Report, path: Path) -> None:
    workbook = Workbook()
    summary = workbook.active
    summary.title = "Summary" if report.lang == "en" else "Сводка"
    summary.append([report.title])
    summary["A1"].font = Font(bold=True, size=14)
    summary.append([report.subtitle])
    summary.append([])
    for section in report.sections:
        summary.append([section.title, neutralise(section.reading)])
        summary.cell(summary.max_row, 1).font = Font(bold=True)
    summary.column_dimensions["A"].width = 34
    summary.column_dimensions["B"].width = 120
    for section in report.sections:
        _section(workbook.create_sheet(section.title[:31].replace("/", "-")), section,
                 report.lang)  # fmt: skip
    workbook.properties.language = report.lang
    workbook.save(path)


def _section(sheet: Worksheet, section: Section, lang: str) -> None:
    sheet.append([section.title])
    sheet["A1"].font = Font(bold=True, size=13)
    sheet.append([neutralise(section.reading)])
    row = 4
    widths: dict[int, int] = {}
    charted: list[tuple[Plot, int]] = []  # (plot, anchor row): placed once its data is written
    for plot in section.chart.plots if section.chart else []:
        if plot.kind == "heatmap":
            row = _heatmap(sheet, plot, row, widths)
        else:
            charted.append((plot, row))
            row += math.ceil(_height_cm(plot) / ROW_CM) + 2
    for table in section.tables:
        sheet.cell(row, 1, str(neutralise(table.caption))).font = Font(bold=True)
        row += 1
        for j, column in enumerate(table.columns, start=1):
            _header(sheet.cell(row, j, str(neutralise(column))))
            widths[j] = max(widths.get(j, 8), len(str(column)))
        row += 1
        for values in table.rows:
            for j, (value, kind) in enumerate(zip(values, table.kinds, strict=True), 1):
                value = None if _missing(value) else value
                value = float(value) if kind != "text" and value is not None else value
                cell = sheet.cell(row, j, neutralise(value) if kind == "text" else value)
                if kind == "text" and isinstance(value, str):
                    cell.data_type = "s"
                if kind in FORMATS:
                    cell.number_format = FORMATS[kind]
                widths[j] = max(widths.get(j, 8), min(len(str(value or "")), 50))
            row += 1
        row += 1
    if charted:
        sheet.cell(row, 1, CHART_DATA[lang]).font = Font(bold=True)
        row += 1
        for plot, anchor in charted:
            first = row
            row = _block(sheet, plot, row, widths)
            sheet.add_chart(_chart(sheet, plot, first), f"A{anchor}")
            row += 1
    for j, width in widths.items():
        sheet.column_dimensions[get_column_letter(j)].width = width + 2


def _header(cell: Cell) -> None:
    cell.font, cell.fill = Font(bold=True), HEADER_FILL


def _text(sheet: Worksheet, row: int, column: int, value: object) -> None:
    cell = sheet.cell(row, column, neutralise(str(value)))
    cell.data_type = "s"


def _block(sheet: Worksheet, plot: Plot, row: int, widths: dict[int, int]) -> int:
    """The plot's data: a header (the x title, then one column per series) and a row per
    category. Returns the row after it."""
    _text(sheet, row, 1, plot.x_title if plot.kind != "bar" else "")
    _header(sheet.cell(row, 1))
    for j, name in enumerate(plot.series, start=2):
        _text(sheet, row, j, name)
        _header(sheet.cell(row, j))
        widths[j] = max(widths.get(j, 8), min(len(str(name)), 30))
    for i, category in enumerate(plot.categories, start=1):
        if isinstance(category, str):
            _text(sheet, row + i, 1, category)
        else:
            sheet.cell(row + i, 1, category).number_format = plot.number_format
        widths[1] = max(widths.get(1, 8), min(len(str(category)), 50))
        for j, values in enumerate(plot.series.values(), start=2):
            sheet.cell(row + i, j, _number(values[i - 1])).number_format = plot.number_format
    return row + len(plot.categories) + 1


def _heatmap(sheet: Worksheet, plot: Plot, row: int, widths: dict[int, int]) -> int:
    """A table coloured by value (one scale over the whole table); highlighted columns
    outlined. Returns the row after it."""
    sheet.cell(row, 1, str(neutralise(plot.title))).font = Font(bold=True)
    row += 1
    _text(sheet, row, 1, plot.title if not plot.x_title else f"{plot.y_title} \\ {plot.x_title}")
    _header(sheet.cell(row, 1))
    for j, name in enumerate(plot.series, start=2):
        _text(sheet, row, j, name)
        _header(sheet.cell(row, j))
        widths[j] = max(widths.get(j, 8), min(len(str(name)), 24))
    hot = {j for j, name in enumerate(plot.series, start=2) if name in plot.highlight}
    last = row + len(plot.categories)
    for i, category in enumerate(plot.categories, start=1):
        _text(sheet, row + i, 1, category)
        widths[1] = max(widths.get(1, 8), min(len(str(category)), 40))
        for j, values in enumerate(plot.series.values(), start=2):
            cell = sheet.cell(row + i, j, _number(values[i - 1]))
            cell.number_format = plot.number_format
            if j in hot:
                cell.border = Border(left=OUTLINE, right=OUTLINE,
                                     top=OUTLINE if i == 1 else None,
                                     bottom=OUTLINE if row + i == last else None)  # fmt: skip
    if plot.categories and plot.series:
        corner = f"{get_column_letter(len(plot.series) + 1)}{last}"
        sheet.conditional_formatting.add(f"B{row + 1}:{corner}", HEAT)
    return last + 2


def _chart(sheet: Worksheet, plot: Plot, first: int) -> BarChart | LineChart | ScatterChart:
    """A native chart over the data block whose header is on row `first`."""
    n, k = len(plot.categories), len(plot.series)
    categories = Reference(sheet, min_col=1, min_row=first + 1, max_row=first + n)
    data = Reference(sheet, min_col=2, max_col=1 + k, min_row=first, max_row=first + n)
    if plot.kind == "scatter":
        chart = ScatterChart(scatterStyle="lineMarker")
        for j in range(2, 2 + k):
            values = Reference(sheet, min_col=j, min_row=first, max_row=first + n)
            series = Series(values, categories, title_from_data=True)
            series.marker = Marker(symbol="circle" if j == 2 else "none")
            if j > 2:  # the diagonal: where observed equals predicted
                series.graphicalProperties.line.dashStyle = "dash"
                series.graphicalProperties.line.solidFill = "808080"
            chart.series.append(series)
    else:
        chart = LineChart() if plot.kind == "line" else BarChart()
        chart.add_data(data, titles_from_data=True)
        chart.set_categories(categories)
    if plot.kind in ("bar", "column"):
        chart.type = "bar" if plot.kind == "bar" else "col"
        chart.grouping = "clustered"
        chart.gapWidth = 40
    if plot.kind == "bar":
        # Excel draws the first category at the bottom; the HTML lists it on top.
        chart.x_axis.scaling.orientation = "maxMin"
        series = chart.series[0]
        series.graphicalProperties.solidFill = BLUE[1:]
        for i, category in enumerate(plot.categories):
            if category in plot.highlight:
                point = DataPoint(idx=i)
                point.graphicalProperties.solidFill = HIGHLIGHT[1:]
                series.dPt.append(point)
    if plot.kind == "line":
        for name, series in zip(plot.series, chart.series, strict=True):
            width = 3.2 if name in plot.highlight else 1.4  # as in the HTML's chart
            series.graphicalProperties.line.width = int(width * EMU_PER_PT)
            series.smooth = False
    if k == 1 and plot.kind != "scatter":
        chart.legend = None
    elif chart.legend is not None:
        chart.legend.position = "b"
    chart.title = plot.title or None
    value_title = plot.x_title if plot.kind == "bar" else plot.y_title
    chart.y_axis.title = value_title or None
    chart.x_axis.title = (plot.x_title if plot.kind != "bar" else None) or None
    chart.y_axis.number_format = plot.number_format
    # openpyxl ≥ 3.1 writes axes as deleted unless told otherwise: Excel would hide them.
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    chart.width = CHART_WIDTH_CM
    chart.height = _height_cm(plot)
    return chart


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
