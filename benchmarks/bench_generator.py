"""Benchmark of the synthetic ecosystem generator (`simulation.ecosystem.generate`).

    python -m benchmarks.bench_generator --customers 100000 --runs 3

Prints one JSON line: median/min seconds over the runs, the median CPU seconds (this
process and the generator's child process; steadier than wall time on a shared machine),
appointment and file volumes, throughput, a linear extrapolation to the `bench` scale (1M
customers) and the machine size. Output goes to a temporary directory that is removed
afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from simulation.ecosystem import SCALES, generate


def _total_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    times: list[float] = []
    cpu: list[float] = []
    manifest: dict = {}
    size = 0
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench_gen_") as tmp:
            out = Path(tmp) / "src"
            t0, c0 = time.perf_counter(), _cpu_seconds()
            manifest = generate(out, customers=args.customers, seed=args.seed)
            times.append(time.perf_counter() - t0)
            cpu.append(_cpu_seconds() - c0)
            size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    median = statistics.median(times)
    appts = manifest["counts"]["appointments"]
    result = {
        "benchmark": "generator",
        "customers": args.customers,
        "runs": args.runs,
        "median_s": round(median, 3),
        "min_s": round(min(times), 3),
        "median_cpu_s": round(statistics.median(cpu), 3),
        "appointments": appts,
        "api_appointment_lines": manifest["files"]["crm/api/appointments.jsonl"]["rows"],
        "sends": manifest["counts"]["sends"],
        "output_bytes": size,
        "appointments_per_s": round(appts / median),
        "extrapolated_bench_s": round(median * SCALES["bench"] / args.customers, 1),
        "cpu_count": os.cpu_count(),
        "memory_total_bytes": _total_memory_bytes(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
