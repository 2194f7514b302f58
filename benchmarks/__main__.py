"""`make bench`: run the benchmarks one after another and write BENCHMARKS.md.

Each benchmark is a module `benchmarks/bench_<name>.py` run in its own process (the
embedded engine is one directory per process); its last stdout line is a JSON object of
results. Results are kept in `benchmarks/results.json` (so `--only` updates one entry)
and rendered into BENCHMARKS.md with the machine's size.

    python -m benchmarks                 # every benchmark at full size
    python -m benchmarks --quick         # reduced sizes, for a smoke run
    python -m benchmarks --only phones --only webhooks
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).with_name("results.json")
REPORT = ROOT / "BENCHMARKS.md"
# Hand-kept context under the generated table: runs made outside `make bench` (each with
# its command), what a figure means, why a target is missed.
NOTES = Path(__file__).with_name("NOTES.md")


@dataclass(frozen=True)
class Bench:
    name: str
    target: str
    full: tuple[str, ...]
    quick: tuple[str, ...]


BENCHES = [
    Bench("generator", "1M customers in < 120 s",
          ("--customers", "1000000", "--runs", "2"), ("--customers", "20000", "--runs", "2")),
    Bench("phones", "≥ 100k customers/s with phone normalisation",
          ("--rows", "1000000", "--runs", "5"), ("--rows", "100000", "--runs", "3")),
    Bench("file_ingestion", "10M appointment rows incl. validation at ≥ 2M rows/s (issue #19)",
          ("--rows", "10000000", "--files", "10", "--runs", "3"),
          ("--rows", "500000", "--files", "2", "--runs", "2")),
    Bench("webhooks", "≥ 5,000 accepted webhooks/s, p99 < 50 ms, durable spool",
          ("--requests", "100000", "--runs", "3"), ("--requests", "10000", "--runs", "2")),
    Bench("partner_feeds", "partner events per second per format (no target)",
          ("--events", "100000", "--runs", "3"), ("--events", "10000", "--runs", "2")),
    Bench("dbt", "dbt build of all models on 1M customers ≤ 90 s",
          ("--customers", "1000000", "--runs", "3"), ("--customers", "20000", "--runs", "1")),
    Bench("ml", "training on 1M customers ≤ 180 s, scoring 1M ≤ 15 s",
          ("--customers", "1000000", "--runs", "1"), ("--customers", "50000", "--runs", "1")),
    Bench("ml_ecosystem", "model beats baselines on AUC and Brier; AUC within 0.03 of truth",
          ("--customers", "20000"), ("--customers", "5000")),
    Bench("ml_real", "real logs (CDNOW, Complete Journey): ROC-AUC ≥ 0.78, Brier below BG/NBD",
          ("--threads", "1"), ("--threads", "1", "--log", "complete_journey")),
    Bench("uplift", "uplift targeting beats score targeting and send-to-all at equal budget",
          ("--customers", "20000"), ("--customers", "5000")),
    Bench("planner", "planning for a 1M-customer audience ≤ 20 s",
          ("--customers", "1000000", "--runs", "3"), ("--customers", "100000", "--runs", "2")),
    Bench("delivery", "≥ 1,000 msg/s with rate limits off; within 5% of 80 msg/s with the "
          "limit; fault storm: 0 double accruals over ≥ 1,000 ambiguous outcomes",
          ("--messages", "20000", "--rate-messages", "480", "--runs", "5"),
          ("--messages", "1500", "--rate-messages", "320", "--runs", "2")),
    Bench("peers", "customer_rfm, 20M visits: ≥ 20× PostgreSQL, ≥ 4× pandas, ≤ ½ its memory",
          ("--visits", "20000000", "--customers", "1000000", "--runs", "3"),
          ("--visits", "2000000", "--customers", "100000", "--runs", "1")),
    Bench("report", "the marketer's report (HTML, XLSX, PDF) for the 20k demo ≤ 10 s",
          ("--customers", "20000", "--runs", "3"), ("--customers", "2000", "--runs", "1")),
    Bench("crash", "≥ 20 random SIGKILLs per area: 0 lost, 0 duplicated, 0 double effects",
          ("--kills", "20", "--seed", "17"), ("--kills", "3", "--seed", "17")),
]  # fmt: skip


def machine() -> dict[str, object]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpus": os.cpu_count(), "memory_gib": round(memory, 1),
            "python": platform.python_version(), "platform": platform.platform()}  # fmt: skip


def run(bench: Bench, quick: bool) -> dict[str, object]:
    args = bench.quick if quick else bench.full
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.bench_{bench.name}", *args],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr or done.stdout)[-2000:], "args": list(args)}
    result = json.loads(lines[-1])
    result.update(args=list(args), wall_s=round(time.perf_counter() - started, 1))
    return result


HEADLINE_PARTS = ("per_s", "second", "median", "_ms", "gap", "beats", "error_pct", "failed",
                  "_kills", "_lost", "_duplicated", "_double_effects", "storm_")  # fmt: skip


def _headline(key: str) -> bool:
    """Keys worth a place in the summary table (the raw JSON below has everything)."""
    return key != "wall_s" and (key.endswith("_s") or any(p in key for p in HEADLINE_PARTS))


def render(results: dict[str, dict]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m benchmarks`); every figure is a median over the",
        "runs of the script named, on the machine described with it. Machines are noisy:",
        "compare ratios measured in the same run, not absolute figures across machines.",
        "",
        "| benchmark | target | size | result | measured |",
        "| --- | --- | --- | --- | --- |",
    ]
    for bench in BENCHES:
        entry = results.get(bench.name)
        if entry is None:
            lines.append(f"| {bench.name} | {bench.target} | — | not run | — |")
            continue
        result = entry["result"]
        headline = {k: v for k, v in result.items() if k not in ("args", "error")}
        summary = (
            "error"
            if "error" in result
            else ", ".join(f"{k}={v}" for k, v in headline.items() if _headline(k))
        )
        lines.append(
            f"| {bench.name} | {bench.target} | `{' '.join(result.get('args', []))}` | "
            f"{summary} | {entry['at']}, {entry['machine']['cpus']} CPUs, "
            f"{entry['machine']['memory_gib']} GiB |"
        )
    if NOTES.exists():
        lines += ["", NOTES.read_text().strip()]
    lines += ["", "## Raw results", "", "```json", json.dumps(results, indent=2), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes")
    parser.add_argument("--only", action="append", help="benchmark name (repeatable)")
    parser.add_argument(
        "--render",
        action="store_true",
        help="rewrite BENCHMARKS.md from results.json and NOTES.md, run nothing",
    )
    options = parser.parse_args(argv)
    if options.render:
        REPORT.write_text(render(json.loads(RESULTS.read_text())))
        return
    chosen = [b for b in BENCHES if not options.only or b.name in options.only]
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for bench in chosen:
        print(f"… {bench.name}", flush=True)
        result = run(bench, options.quick)
        print(json.dumps(result), flush=True)
        results[bench.name] = {
            "result": result, "machine": machine(), "quick": options.quick,
            "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }  # fmt: skip
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        REPORT.write_text(render(results))


if __name__ == "__main__":
    main()
