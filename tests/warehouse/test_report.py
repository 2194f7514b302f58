"""The marketer's report on a new business: a warehouse with the business and the
segment seed but no activity (some marts empty, some not built at all) renders every
section as "no data yet", in all three formats, and Chromium shows it without errors.
The report on real data is checked after the demo (tests/integration/test_pipeline.py)."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

import warehouse
from revisit.settings import PROJECT_ROOT, Settings
from tests.report_checks import check_html, check_xlsx, pdf_pages
from warehouse import contracts
from warehouse.report import ReportError, build_report, parse_period
from warehouse.report.model import fmt
from warehouse.report.sections import SECTION_IDS, T

# Contracted marts the report reads; the others (history, migration, dashboard, flows,
# scores) are left unbuilt, as on a warehouse where dbt has not run them yet.
CONTRACTED = ["marts.dim_businesses", "marts.rfm_segments", "marts.campaign_results",
              "marts.partner_offer_conversion_by_month", "marts.fct_visits"]  # fmt: skip


def test_numbers_follow_the_locale() -> None:
    assert fmt(1234.5, "money", "ru", "RUB") == "1\u00a0234,5\u00a0₽"
    assert fmt(1234.5, "money", "en", "USD") == "$1,234.5"
    assert fmt(0.1234, "pct", "ru") == "12,3\u00a0%"
    assert fmt(0.1234, "pct", "en") == "12.3%"
    assert fmt(1234567, "int", "ru") == "1\u00a0234\u00a0567"
    assert fmt(float("nan"), "pct", "en") == "—"


def test_period_must_be_a_month() -> None:
    assert str(parse_period("2026-11")) == "2026-11-01"
    with pytest.raises(ReportError, match="YYYY-MM"):
        parse_period("11/2026")


@pytest.fixture
def new_business(settings: Settings) -> Settings:
    with warehouse.connect(settings.warehouse_dsn) as client:
        contracts.create_tables(client, CONTRACTED)
        client.insert(
            "marts.dim_businesses",
            [["B-NEW", "Студия «Новая»", "salon", "RU", "Москва", "Europe/Moscow", "RUB"]],
            column_names=["business_id", "name", "kind", "country", "city", "timezone",
                          "currency"],
        )  # fmt: skip
        with (PROJECT_ROOT / "dbt_project" / "seeds" / "rfm_segments.csv").open() as f:
            rows = list(csv.DictReader(f))
        client.insert(
            "marts.rfm_segments",
            [[int(v) if k == "sort_order" else v for k, v in row.items()] for row in rows],
            column_names=list(rows[0]),
        )
    return settings


def test_new_business_renders_no_data_yet_everywhere(
    new_business: Settings, tmp_path: Path
) -> None:
    with warehouse.connect(new_business.warehouse_dsn) as client:
        with pytest.raises(ReportError, match="unknown business 'B-NOPE'"):
            build_report(client, tmp_path, business_id="B-NOPE")
        files = build_report(client, tmp_path, business_id="B-NEW", period=parse_period("2026-11"))
    assert [f.path.suffix for f in files] == [".html", ".xlsx", ".pdf"]
    assert {f.empty_sections for f in files} == {SECTION_IDS}
    html, xlsx, pdf = (f.path for f in files)
    assert html.parent.name == "Студия «Новая»" and html.name == "report-2026-11.html"
    probe = check_html(html)
    for section in probe["phone"]["sections"]:
        assert section["empty"] and section["reading"] == T["ru"]["no_data"]
    assert check_xlsx(xlsx)[0] == "Сводка"
    assert pdf_pages(pdf) == 1 + len(SECTION_IDS)


def test_chart_text_is_escaped_and_follows_the_locale() -> None:
    """Names come from CRMs and partners: markup in them is drawn as text, never parsed
    (the HTML inlines the SVG); axis numbers use the report's locale."""
    from warehouse.report import charts

    names = ['<script>alert("x")</script>', "Салон «Ромашка» & Co", "</svg><img src=x>"]
    for lang, thousands in (("ru", "1\u00a0500"), ("en", "1,500")):
        chart = charts.bars(names, [1500.0, 40.0, 3.0], "Клиентов", lang, [True, False, False])
        assert "<script" not in chart.svg and "<img" not in chart.svg
        assert "&lt;script&gt;" in chart.svg and "Салон «Ромашка» &amp; Co" in chart.svg
        assert thousands in chart.svg, f"{lang}: axis labels not in the locale"
        assert chart.svg.count("<svg") == 1 and chart.width > 300 and chart.height > 50
        # The PDF draws the same layout; the XLSX charts the same data natively.
        assert chart.scenegraph["width"] == chart.width
        assert chart.plots[0].categories == names
        assert chart.plots[0].highlight == (names[0],)


SERIES = ["Чемпионы", "Под угрозой ухода", "<b>Спящие</b>", "=cmd|' /C calc'!A0"]


def _every_chart(lang: str) -> dict[str, object]:
    """One chart of each kind, on small made-up data, keyed by the section that shows it."""
    import numpy as np
    import pandas as pd

    from warehouse.report import charts

    t = T[lang]
    rng = np.random.default_rng(16)
    cells = pd.DataFrame([{"r": r, "f": f, "m": m, "customers": int(rng.integers(1, 900)),
                           "revenue_share": rng.random() / 27}
                          for r in (1, 2, 3) for f in (1, 2, 3) for m in (1, 2, 3)])  # fmt: skip
    cells["customer_share"] = cells.customers / cells.customers.sum()
    names = SERIES
    pivot = pd.DataFrame({n: rng.integers(10, 500, 12) for n in names},
                         index=pd.date_range("2025-12-31", periods=12, freq="ME"))  # fmt: skip
    moves = pd.DataFrame(rng.integers(0, 300, (4, 4)), index=names, columns=names)
    funnel = pd.DataFrame(rng.integers(10, 1000, (2, 3)), index=["winback", "birthday"])
    p = rng.random(500)
    outcomes = pd.DataFrame({"p_revisit": p, "revisited": (rng.random(500) < p).astype(int),
                             "decile": 10 - np.minimum((p * 10).astype(int), 9)})  # fmt: skip
    return {
        "grid": charts.rfm_grid(cells, t, lang),
        "segments": charts.bars(
            names, [1500, 300, 80, 5], t["customers"], lang, [False, True, False, False]
        ),
        "trend": charts.trend(pivot, t["customers"], [names[1]], lang),
        "migration": charts.matrix(moves, t["to"], t["from"], [names[1]], lang),
        "campaigns": charts.funnel([t["sent"], t["read"], t["rev30"]], funnel, lang),
        "partners": charts.monthly(
            ["2026-09", "2026-10"], {"A": [3.0, 4.0], "B": [1.0, 0.0]}, lang
        ),
        "flows": charts.bars(names[:2], [7.0, 2.0], t["customers"], lang),
        "score": charts.score(p, outcomes, t, lang),
    }


def test_series_legends_are_listed_by_the_report_not_drawn_by_vega(tmp_path: Path) -> None:
    """A chart of several series has its legend (a colour per series, the highlighted ones
    bold) as data the HTML lists above the chart and the PDF writes under it, escaped;
    Vega draws no legend (measuring its labels was a third of a line chart's layout), and
    the chart's lines use the legend's colours."""
    from warehouse.report import ReportFormat, _write, html
    from warehouse.report.model import Report, Section

    drawn = _every_chart("ru")
    trend, funnel = drawn["trend"], drawn["campaigns"]
    assert [(k.label, k.bold) for k in trend.legend] == [(n, n == SERIES[1]) for n in SERIES]
    assert len({k.colour for k in trend.legend}) == len(SERIES)
    assert [k.label for k in funnel.legend] == ["birthday", "winback"]
    for chart in (trend, funnel):
        assert not chart.vega.get("legends"), "Vega still lays out a legend"
        assert all(k.colour in chart.svg for k in chart.legend), "the chart's colours differ"
    assert drawn["grid"].legend == [] and drawn["segments"].legend == []

    shown = [Section(s, s, f"reading {s}", chart=drawn[s]) for s in SECTION_IDS]
    report = Report("B-1", "Салон", "ru", "2026-10", "RUB", "Отчёт", "2026-10", shown)
    page = html.render(report)
    assert page.count('<ul class="legend">') == 3  # trend, campaigns, partners
    assert "&lt;b&gt;Спящие&lt;/b&gt;" in page and "<b>Спящие" not in page
    assert f'<li style="font-weight:600"><i style="background:{trend.legend[1].colour}">' in page
    _write(report, ReportFormat.pdf, tmp_path / "r.pdf")  # markup in a label stays text
    assert pdf_pages(tmp_path / "r.pdf") == 1 + len(SECTION_IDS)


def test_a_writer_process_writes_every_format_without_pandas(tmp_path: Path) -> None:
    """Worker processes write the files from reports this process built: in a fresh
    interpreter, unpickling a report and writing all three formats imports neither pandas
    nor the sections and exports (about half of a worker's start)."""
    import pickle
    import subprocess
    import sys

    import numpy as np

    from warehouse.report.model import Report, Section, Table

    drawn = _every_chart("en")
    shown = [Section(s, s, f"reading {s}", chart=drawn[s]) for s in SECTION_IDS]
    shown[0].tables.append(Table("cells", ["cell", "share"], ["text", "pct"],
                                 [["R3F3M3", np.float64(0.25)]]))  # fmt: skip
    report = Report("B-1", "Salon", "en", "2026-10", "USD", "Report", "2026-10", shown)
    (tmp_path / "report.pickle").write_bytes(pickle.dumps(report))
    script = f"""
import pickle, sys
from pathlib import Path
from warehouse.report import ReportFormat, _warm_up, _write_files
folder = Path({str(tmp_path)!r})
_warm_up(list(ReportFormat))
report = pickle.loads((folder / "report.pickle").read_bytes())
files = _write_files(report, folder / "out", list(ReportFormat))
assert [f.path.suffix for f in files] == [".html", ".xlsx", ".pdf"], files
assert all(f.path.stat().st_size > 1000 for f in files)
print(sorted(m for m in ("pandas", "warehouse.report.sections", "warehouse.exports")
             if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=PROJECT_ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def _inline(node: object, datasets: dict[str, list]) -> object:
    """A chart's spec with its named datasets put back inline, as Vega-Lite had it."""
    if isinstance(node, list):
        return [_inline(item, datasets) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"name"} and node["name"] in datasets:
        return {"values": datasets[node["name"]]}
    return {key: _inline(value, datasets) for key, value in node.items()}


def test_a_compiled_spec_is_shared_and_draws_each_charts_own_data() -> None:
    """Vega-Lite is compiled once per chart spec and the data goes into its named
    datasets: every chart kind draws the same SVG as the whole spec with its data inline,
    and a second chart of a kind reuses the compilation with its own values."""
    import vl_convert

    from warehouse.report import charts, vega

    for kind, chart in _every_chart("ru").items():
        inline = vl_convert.vegalite_to_svg(
            _inline(chart.spec, chart.datasets), config=vega.CONFIG,
            format_locale="ru-RU", allowed_base_urls=[],
        )  # fmt: skip
        assert chart.vega_svg == inline, f"{kind}: compiled once, drawn differently"
    before = vega._compile.cache_info()
    first = charts.bars(["Альфа", "Бета"], [10.0, 20.0], "Клиентов", "en")
    second = charts.bars(['Гамма "1"', "Дельта"], [5.0, 1.0], "Клиентов", "en")
    assert ">Альфа<" in first.svg and '>Гамма "1"<' in second.svg
    assert "Альфа" not in second.svg and "Гамма" not in first.svg
    after = vega._compile.cache_info()
    assert after.misses - before.misses <= 1 and after.hits - before.hits >= 1


def test_svg_written_from_the_scenegraph_draws_what_vega_draws() -> None:
    """The HTML's SVG is written from the scenegraph the PDF draws (one Vega run for
    both): for every chart kind it rasterises to the same pixels as Vega's own SVG and
    holds the same texts; a label Vega would cut at its limit goes to Vega's renderer."""
    import io
    import re

    import numpy as np
    import vl_convert
    from PIL import Image

    from warehouse.report import charts, svg

    def pixels(markup: str) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(vl_convert.svg_to_png(markup))).convert("RGB"))

    def texts(markup: str) -> list[str]:
        return re.findall(r"<(?:text|tspan)[^>]*>([^<]+)<", markup)

    for kind, chart in _every_chart("en").items():
        written = svg.write(chart.scenegraph, chart.vega.get("background"))
        assert chart.svg == written, f"{kind}: not written from the scenegraph"
        assert texts(written) == texts(chart.vega_svg), kind
        assert np.array_equal(pixels(written), pixels(chart.vega_svg)), f"{kind}: drawn apart"
    long = "Очень длинное название партнёра " * 4
    chart = charts.bars([long, "B"], [3.0, 1.0], "n", "ru")
    with pytest.raises(svg.NotWritable):
        svg.write(chart.scenegraph, "white")
    assert chart.svg == chart.vega_svg and "…" in chart.svg and long not in chart.svg


def test_every_chart_kind_reaches_the_workbook_natively_and_the_pdf_as_vectors(
    tmp_path: Path,
) -> None:
    """The XLSX has a native chart (or colour-scaled table) over numbers for every chart
    the HTML shows, and the checker notices one missing; the PDF draws every chart with
    no raster image in it."""
    from warehouse.report import ReportFormat, _write
    from warehouse.report.model import Report, Section

    drawn = _every_chart("ru")
    shown = [Section(s, s, f"reading {s}", chart=drawn[s]) for s in SECTION_IDS]
    report = Report("B-1", "Салон", "ru", "2026-10", "RUB", "Отчёт", "2026-10", shown)
    xlsx, pdf = tmp_path / "r.xlsx", tmp_path / "r.pdf"
    _write(report, ReportFormat.xlsx, xlsx)
    _write(report, ReportFormat.pdf, pdf)
    check_xlsx(xlsx, charted=SECTION_IDS)
    assert pdf_pages(pdf) == 1 + len(SECTION_IDS)
    assert b"/Subtype /Image" not in pdf.read_bytes()

    report.sections[1].chart = None  # the segments chart lost: the check must say so
    _write(report, ReportFormat.xlsx, xlsx)
    with pytest.raises(AssertionError, match="segments: no chart"):
        check_xlsx(xlsx, charted=SECTION_IDS)


def test_the_caller_renders_beside_the_workers_and_files_keep_their_order() -> None:
    """`_share` runs each job once, in this process or a worker, and returns results in
    the jobs' order whoever ran them; with jobs that wait (sleep), the worker and this
    process share them and finish in about half the time of one."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from warehouse.report import _share

    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        pool.submit(pow, 2, 2).result()  # the worker is up
        assert _share(pool, pow, [(2, i) for i in range(40)]) == [2**i for i in range(40)]
        started = time.perf_counter()
        assert _share(pool, time.sleep, [(0.02,)] * 40) == [None] * 40
        assert time.perf_counter() - started < 0.75 * 40 * 0.02
