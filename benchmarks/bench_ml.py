"""Revisit model: training and scoring time on a synthetic world of N customers.

Generates its own visit world with numpy (`simulation.visit_world`: every ML input table, a known
true revisit probability) into a temporary embedded warehouse, then per run: trains on
rolling cutoffs (features in ClickHouse, tuning, fit, calibration, baselines) and scores
every customer into `ml.revisit_scores` (features, prediction, reason codes, write).
Targets (issue 5, 1M customers, 2 cores): training <= 180 s, scoring <= 30 s.

Prints one JSON line: median seconds over `--runs`, the phase split, the metrics of the
model, each baseline and the true probabilities (the ceiling), and the machine size. The
in-run baseline is the BG/NBD fit+predict time on the same held-out rows.

    .venv/bin/python -m benchmarks.bench_ml --customers 50000 --runs 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import warehouse
from ml import registry
from ml.baselines import BGNBDBaseline
from ml.metrics import score_metrics
from ml.scoring import score_customers
from ml.train import TrainConfig, train_and_evaluate
from simulation.visit_world import generate_world

EVALUATION_CUTOFF = "2024-12-01"
SCORED_AT = "2025-01-01"


def _memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, float):
        return None if not math.isfinite(obj) else round(obj, 4)
    return obj


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="default: all cores")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    world = generate_world(n_customers=args.customers, seed=args.seed)
    generate_s = time.perf_counter() - t0
    config = TrainConfig(threads=args.threads)
    train_s, score_s, bgnbd_s, phases = [], [], [], {}
    with tempfile.TemporaryDirectory(prefix="bench-ml-") as tmp:
        dsn = f"chdb://{Path(tmp) / 'warehouse'}"
        models = Path(tmp) / "models"
        with warehouse.connect(dsn) as client:
            t0 = time.perf_counter()
            world.load(client)
            load_s = time.perf_counter() - t0
            # The loaded tables (~3 GB at 1M customers) are not needed again: the truth
            # comes from the simulated visit arrays.
            visits = len(world.tables["marts.fct_visits"])
            world.tables.clear()
            for _ in range(args.runs):
                t0 = time.perf_counter()
                run = train_and_evaluate(client, EVALUATION_CUTOFF, config)
                train_s.append(time.perf_counter() - t0)
                phases["train"] = run.seconds
                registry.register(models, run)
                t0 = time.perf_counter()
                summary = score_customers(client, models, SCORED_AT, threads=args.threads)
                score_s.append(time.perf_counter() - t0)
                phases["score"] = summary.seconds
                t0 = time.perf_counter()
                BGNBDBaseline().predict(run.evaluation_features, config.horizon_days)
                bgnbd_s.append(time.perf_counter() - t0)
    truth = world.true_probability(EVALUATION_CUTOFF, config.horizon_days)
    ev = run.evaluation.merge(truth, on=["business_id", "customer_id"])
    metrics = dict(run.metrics)
    metrics["true_probability"] = score_metrics(ev["revisited"], ev["p_true"])
    train_median, score_median = statistics.median(train_s), statistics.median(score_s)
    result = {
        "benchmark": "ml",
        "customers": args.customers,
        "visits": visits,
        "runs": args.runs,
        "threads": args.threads or os.cpu_count(),
        "train_seconds_median": round(train_median, 2),
        "score_seconds_median": round(score_median, 2),
        "scored_rows": summary.rows,
        "bgnbd_seconds_median": round(statistics.median(bgnbd_s), 2),
        "train_vs_bgnbd_ratio": round(train_median / statistics.median(bgnbd_s), 1),
        "phases_last_run": phases,
        "training_rows": run.rows,
        "generate_seconds": round(generate_s, 2),
        "load_seconds": round(load_s, 2),
        "targets_at_1m": {"train_seconds": 180, "score_seconds": 30},
        "metrics": _clean(metrics),
        "cpu_count": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
