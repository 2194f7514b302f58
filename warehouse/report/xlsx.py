"""The report as a workbook: a summary sheet, then one sheet per section with its
reading, its chart (a PNG of the HTML's SVG) and formatted tables (numbers stay numbers)."""

from __future__ import annotations

import io
from pathlib import Path

from openpyxl import Workbook
from openpyxl.drawing.image import Image
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

from warehouse.exports import neutralise
from warehouse.report.model import Report

FORMATS = {"int": "#,##0", "pct": "0.0%", "money": "#,##0.00", "num": "#,##0.##", "metric": "0.000"}
HEADER_FILL = PatternFill("solid", fgColor="F0F3F6")
CHART_ROWS = 22  # rows an image of ~420 px covers at the default row height


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
        sheet = workbook.create_sheet(section.title[:31].replace("/", "-"))
        sheet.append([section.title])
        sheet["A1"].font = Font(bold=True, size=13)
        sheet.append([neutralise(section.reading)])
        row = 4
        if section.chart:
            image = Image(io.BytesIO(section.chart.png))
            # Shown at the chart's CSS size (the PNG has more pixels, for zooming).
            scale = min(1.0, 760 / section.chart.width)
            image.width = section.chart.width * scale
            image.height = section.chart.height * scale
            sheet.add_image(image, f"A{row}")
            row += int(image.height / 20) + 2
        widths: dict[int, int] = {}
        for table in section.tables:
            sheet.cell(row, 1, table.caption).font = Font(bold=True)
            row += 1
            for j, column in enumerate(table.columns, start=1):
                cell = sheet.cell(row, j, str(neutralise(column)))
                cell.font, cell.fill = Font(bold=True), HEADER_FILL
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
        for j, width in widths.items():
            sheet.column_dimensions[get_column_letter(j)].width = width + 2
    workbook.properties.language = report.lang
    workbook.save(path)


def _missing(value: object) -> bool:
    try:
        return value != value  # NaN
    except (TypeError, ValueError):
        return False
