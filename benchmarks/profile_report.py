"""Where the marketer's report spends its CPU (the `report` row's breakdown, issue 16).

On a data directory a demo filled (`revisit demo --customers 20000`):

    .venv/bin/python -m benchmarks.profile_report --data-dir <demo data dir>

Prints one JSON line:
- `stages_cpu_s`: CPU seconds of each stage for every business, in this one process and
  all three formats: building the sections (pandas), Vega's scenegraphs, the HTML (SVG
  written from the scenegraphs), the XLSX and the PDF. Second of two passes, so spec
  compilations and Vega's start are not in it; `charts`, `texts` and `characters` count
  what Vega laid out;
- `text_shaping_ms`: vl-convert's cost of one text item and of one more character of it
  (empty charts of 200 texts of 2 and of 20 characters, less an empty chart);
- `gil_overlap`: charts rendered on a thread beside pure-Python work, wall time together
  over the two run one after the other (1.0: vl-convert holds the GIL, nothing overlaps);
- `worker_start_cpu_s` and `worker_imports_pandas`: a fresh interpreter importing what a
  report worker imports and starting Vega;
- `cli_import_s`: importing `revisit.cli` in a fresh interpreter (every command, and every
  spawned report worker, which re-imports its parent's main module, pays it).
Fixed costs are medians of `--runs`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import vl_convert

import warehouse
from benchmarks.bench_report import _model
from warehouse.report import build_report, html, pdf, sections, vega, xlsx

ROOT = Path(__file__).resolve().parent.parent
WORKER_START = """
import sys, time
started = time.process_time()
import warehouse.report as report
report._warm_up(list(report.ReportFormat))
print(time.process_time() - started, "pandas" in sys.modules)
"""
CLI_IMPORT = """
import time
started = time.perf_counter()
import revisit.cli
print(time.perf_counter() - started)
"""


def _cpu(fn: Any, *args: Any) -> float:
    started = time.process_time()
    fn(*args)
    return time.process_time() - started


def _built(client: Any, model: dict | None) -> list[tuple]:
    """The arguments `build_report` gives `sections.build` for every business."""
    calls: list[tuple] = []
    original = sections.build

    def record(*args: Any) -> Any:
        calls.append(args)
        return original(*args)

    sections.build = record
    try:
        with tempfile.TemporaryDirectory() as tmp:
            build_report(client, Path(tmp), formats=[], model_metadata=model, workers=1)
    finally:
        sections.build = original
    return calls


def _texts(node: Any) -> tuple[int, int]:
    """(text items, characters) in a scenegraph."""
    if isinstance(node, list):
        counts = [_texts(item) for item in node]
        return sum(c[0] for c in counts), sum(c[1] for c in counts)
    if not isinstance(node, dict):
        return 0, 0
    items, characters = 0, 0
    if node.get("marktype") == "text":
        for item in node.get("items", []):
            text = item.get("text")
            items += 1
            characters += len("".join(text) if isinstance(text, list) else str(text or ""))
    for value in node.values():
        if isinstance(value, dict | list):
            more = _texts(value)
            items, characters = items + more[0], characters + more[1]
    return items, characters


def _stages(calls: list[tuple]) -> dict[str, Any]:
    cpu = dict.fromkeys(("sections", "vega", "html", "xlsx", "pdf"), 0.0)
    charts = texts = characters = 0
    with tempfile.TemporaryDirectory() as tmp:
        for args in calls:
            started = time.process_time()
            report = sections.build(*args)
            cpu["sections"] += time.process_time() - started
            shown = [s.chart for s in report.sections if s.chart is not None]
            cpu["vega"] += sum(_cpu(lambda c: c.scenegraph, chart) for chart in shown)
            for chart in shown:
                counted = _texts(chart.scenegraph)
                charts, texts, characters = charts + 1, texts + counted[0], characters + counted[1]
            cpu["html"] += _cpu(html.render, report)
            cpu["xlsx"] += _cpu(xlsx.write, report, Path(tmp) / "r.xlsx")
            cpu["pdf"] += _cpu(pdf.write, report, Path(tmp) / "r.pdf")
    return {"stages_cpu_s": {k: round(v, 2) for k, v in cpu.items()},
            "stages_total_cpu_s": round(sum(cpu.values()), 2),
            "charts": charts, "texts": texts, "characters": characters}  # fmt: skip


def _text_spec(texts: list[str]) -> dict[str, Any]:
    return {
        "$schema": "https://vega.github.io/schema/vega/v5.json", "width": 400, "height": 400,
        "data": [{"name": "t", "values": [{"t": t} for t in texts]}],
        "marks": [{"type": "text", "from": {"data": "t"}, "encode": {"enter": {
            "text": {"field": "t"}, "x": {"value": 10}, "y": {"value": 10},
            "font": {"value": vega.FONT}, "fontSize": {"value": 10}}}}],
    }  # fmt: skip


def _text_shaping(runs: int) -> dict[str, float]:
    def ms(texts: list[str]) -> float:
        spec = _text_spec(texts)
        return 1000 * statistics.median(
            _cpu(vl_convert.vega_to_scenegraph, spec) for _ in range(max(runs, 3) * 3)
        )

    n = 200
    empty = ms([])
    short = (ms([f"{i % 100:02d}" for i in range(n)]) - empty) / n  # 2 characters
    long = (ms([f"Segment name {i % 100:02d}xxxx" for i in range(n)]) - empty) / n  # 20
    per_character = (long - short) / 18
    return {"per_text": round(short - 2 * per_character, 3),
            "per_character": round(per_character, 3)}  # fmt: skip


def _gil_overlap(charts: list[vega.Chart]) -> float:
    specs = [chart.vega for chart in charts]

    def draw() -> None:
        for spec in specs:
            vl_convert.vega_to_scenegraph(spec, allowed_base_urls=[])

    def count() -> None:
        total = 0
        for i in range(8_000_000):
            total += i

    started = time.perf_counter()
    draw()
    count()
    apart = time.perf_counter() - started
    started = time.perf_counter()
    beside = threading.Thread(target=draw)
    beside.start()
    count()
    beside.join()
    return round((time.perf_counter() - started) / apart, 2)


def _fresh(script: str, runs: int) -> list[list[str]]:
    """What `script` prints, in a fresh interpreter each run."""
    command = [sys.executable, "-c", script]
    done = [subprocess.run(command, cwd=ROOT, check=True, text=True, capture_output=True,
                           timeout=300) for _ in range(runs)]  # fmt: skip
    return [d.stdout.split() for d in done]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    model = _model(args.data_dir)
    with warehouse.connect(f"chdb://{args.data_dir / 'warehouse'}") as client:
        calls = _built(client, model)
    _stages(calls)  # first pass: Vega starts, specs compile
    result = _stages(calls)
    some = [s.chart for args_ in calls[:10] for s in sections.build(*args_).sections if s.chart]
    workers = _fresh(WORKER_START, args.runs)
    print(json.dumps({
        "businesses": len(calls),
        **result,
        "text_shaping_ms": _text_shaping(args.runs),
        "gil_overlap": _gil_overlap(some),
        "worker_start_cpu_s": round(statistics.median(float(w[0]) for w in workers), 2),
        "worker_imports_pandas": any(w[1] == "True" for w in workers),
        "cli_import_s": round(statistics.median(
            float(out[0]) for out in _fresh(CLI_IMPORT, args.runs)), 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
