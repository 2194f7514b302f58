"""Checks of a rendered marketer's report shared by the report tests: the HTML in
headless Chromium at desktop and phone width, the XLSX with openpyxl, the PDF's pages."""

from __future__ import annotations

import io
import re
from collections.abc import Collection
from pathlib import Path

from openpyxl import Workbook, load_workbook
from PIL import Image, ImageStat

from tests.chromium import chromium
from warehouse.report.sections import SECTION_IDS

PROBE = """JSON.stringify({
  sections: [...document.querySelectorAll('section')].map(s => ({
    id: s.id, empty: s.classList.contains('empty'),
    reading: s.querySelector('p.reading').textContent.trim(),
    charts: [...s.querySelectorAll('.chart svg.marks')].map(svg => {
      const box = svg.getBoundingClientRect();
      // Drawn: a path with an outline of some size (bars, lines, symbols). Vega's own
      // SVG also writes empty background paths (d="M0,0h0v0h0Z"), which do not count.
      const drawn = [...svg.querySelectorAll('path')].filter(p => {
        const b = p.getBBox();
        return p.getAttribute('display') !== 'none' && b.width + b.height > 0});
      return box.width > 100 && box.height > 50 && drawn.length > 0}),
    height: s.getBoundingClientRect().height})),
  overflow: document.documentElement.scrollWidth > window.innerWidth})"""
VIEWPORTS = {"desktop": (1280, 900, False), "phone": (390, 844, True)}


def check_html(path: Path, screenshots: Path | None = None) -> dict[str, dict]:
    """Open the report at desktop and phone width; assert no console error, no request
    leaves the file, every section present with a reading, every chart drawn (an SVG
    with marks), no page wider than the screen, a screenshot with content. Returns the
    probe per viewport."""
    import json

    found = {}
    with chromium() as browser:
        for name, (width, height, mobile) in VIEWPORTS.items():
            page = browser.open(path.as_uri(), width, height, PROBE, mobile=mobile)
            assert page.errors == [], page.errors
            outside = [u for u in page.requests if not u.startswith(("file:", "data:"))]
            assert outside == [], f"the report requested {outside}"
            probe = json.loads(page.value)
            assert [s["id"] for s in probe["sections"]] == list(SECTION_IDS)
            for section in probe["sections"]:
                assert section["reading"], section["id"]
                assert section["height"] > 40, section["id"]
                assert all(section["charts"]), f"{section['id']}: a chart is blank"
                assert section["empty"] or section["charts"], f"{section['id']} has no chart"
            assert not probe["overflow"], f"{name}: the page scrolls sideways"
            image = Image.open(io.BytesIO(page.screenshot)).convert("L")
            assert image.width == width and image.height > height / 2
            assert ImageStat.Stat(image).stddev[0] > 10, f"{name}: blank screenshot"
            if screenshots:
                image.save(screenshots / f"{path.stem}-{name}.png")
            found[name] = probe
    return found


def check_xlsx(path: Path, charted: Collection[str] = ()) -> list[str]:
    """One summary sheet plus one per section, each with its title and reading; each
    section in `charted` (the ones whose HTML has a chart) has its chart in the sheet: a
    native Excel chart whose every series reads numbers from the sheet, or a heatmap
    table (a colour-scale conditional format over numbers)."""
    workbook = load_workbook(path)
    assert len(workbook.sheetnames) == 1 + len(SECTION_IDS), workbook.sheetnames
    for section, sheet in zip(SECTION_IDS, workbook.worksheets[1:], strict=True):
        assert sheet["A1"].value and sheet["A2"].value, sheet.title
        if section not in charted:
            continue
        scales = [rule for ranges in sheet.conditional_formatting for rule in ranges.rules
                  if rule.type == "colorScale"]  # fmt: skip
        assert sheet._charts or scales, f"{section}: no chart in the workbook"
        for chart in sheet._charts:
            assert chart.series, f"{section}: a chart without series"
            for series in chart.series:
                reference = (series.val or series.yVal).numRef.f
                assert _numbers(workbook, reference), f"{section}: {reference} has no numbers"
        for ranges in sheet.conditional_formatting:
            if any(rule.type == "colorScale" for rule in ranges.rules):
                assert _numbers(workbook, f"'{sheet.title}'!{ranges.sqref}"), section
    return workbook.sheetnames


def _numbers(workbook: Workbook, reference: str) -> list[float]:
    """The numbers in a range like 'Sheet'!$B$5:$B$9."""
    title, cells = reference.rsplit("!", 1)
    sheet = workbook[title.strip("'").replace("''", "'")]
    picked = sheet[cells.replace("$", "")]
    rows = picked if isinstance(picked, tuple) else ((picked,),)
    values = [c.value for row in rows for c in (row if isinstance(row, tuple) else (row,))]
    return [v for v in values if isinstance(v, int | float)]


def pdf_pages(path: Path) -> int:
    data = path.read_bytes()
    assert data.startswith(b"%PDF-")
    return len(re.findall(rb"/Type /Page\b", data))
