"""Uplift targeting on the synthetic ecosystem, against the generator's true uplift.

Runs `revisit demo --customers N` into a fresh data directory (or reuses one with
`--data-dir`), then, with the evaluation cutoff C = as_of − 30 days (a planning period
start of the generator, whose sends have a truth row each):

- trains the uplift models (ml/uplift.py: the default pooled T-learner with the trigger
  as a feature, and separate per-trigger T-learners) on the sends planned before C − 30
  days (so every training label is complete before C);
- scores the sends planned in [C, C + 30 days) and joins the sent ones to the truth file
  (`revisit_probability.parquet` at as_of = C: true uplift = probability −
  probability_without_message; holdout rows have no counterfactual there);
- per trigger, at equal message budgets (10%, 25%, 50% of the sends), sums the true
  incremental revisits of three policies: uplift targeting (highest predicted uplift),
  score targeting (highest predicted revisit probability when messaged — who comes
  back, the usual "send to the best customers") and send-to-all/random (the budget's
  share of every send's true uplift); plus the normalised AUUC against the truth
  (0 random, 1 perfect) and the observed Qini coefficient (outcomes + holdout only).

    .venv/bin/python -m benchmarks.bench_uplift --customers 20000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import warehouse
from ingestion.identity import customer_id
from ml.uplift import (
    UpliftModel,
    fit_uplift,
    gain_at_budget,
    normalized_truth_auuc,
    qini_coefficient,
    send_frame,
)
from revisit.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BUDGETS = (0.10, 0.25, 0.50)


def _demo(customers: int, data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVISIT_")}
    env["REVISIT_DATA_DIR"] = str(data_dir)
    subprocess.run(
        [str(Path(sys.executable).with_name("revisit")), "demo", "--customers", str(customers)],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip


def evaluate(data_dir: Path, threads: int | None = 1) -> dict:
    settings = Settings(data_dir=data_dir)
    manifest = json.loads((settings.source_dir / "manifest.json").read_text())
    as_of = dt.date.fromisoformat(manifest["as_of"])
    cutoff = as_of - dt.timedelta(days=30)
    c = dt.datetime.combine(cutoff, dt.time(), dt.UTC)
    with warehouse.connect(settings.warehouse_dsn) as client:
        train = send_frame(client, until=c - dt.timedelta(days=30))
        test = send_frame(client, since=c, until=c + dt.timedelta(days=30))
    truth = pd.read_parquet(settings.source_dir / "truth" / "revisit_probability.parquet")
    truth = truth[truth.as_of == cutoff].copy()
    truth["customer_id"] = customer_id(truth.phone, settings.id_key)
    truth["tau"] = truth.probability - truth.probability_without_message
    truth = truth.rename(columns={"planned_trigger": "trigger"})
    truth = truth.groupby(["business_id", "customer_id", "trigger"], as_index=False).tau.max()
    result = {
        "evaluation_cutoff": str(cutoff),
        "train_sends": len(train),
        "eval_sends": len(test),
    }
    for variant, separate in (("pooled", False), ("per_trigger", True)):
        model = fit_uplift(train, threads=threads, per_trigger=separate)
        result[variant] = _compare(model, test, truth)
    return result


def _compare(model: UpliftModel, test: pd.DataFrame, truth: pd.DataFrame) -> dict:
    per_trigger: dict[str, dict] = {}
    totals = {"uplift": {}, "score": {}, "send_to_all": {}}
    for trigger in model.triggers:
        rows = test[test.trigger == trigger]
        if rows.empty:
            continue
        uplift = model.predict(rows, trigger)
        p_sent, _ = model.arms(rows, trigger)
        treated = ~rows.holdout.to_numpy(bool)
        qini = qini_coefficient(rows.revisited.to_numpy(), treated, uplift)
        sent = rows.assign(uplift=uplift, p_sent=p_sent)[treated]
        joined = sent.merge(truth, on=["business_id", "customer_id", "trigger"], how="inner")
        tau = joined.tau.to_numpy()
        entry: dict = {
            "sends_trained_on": model.counts.get(trigger, {}),
            "model": "per-trigger" if trigger in model.per_trigger else "pooled",
            "sent_in_eval": int(treated.sum()),
            "matched_to_truth": len(joined),
            "true_uplift_mean": round(float(tau.mean()), 5) if len(tau) else None,
            "auuc_vs_truth_uplift": round(normalized_truth_auuc(tau, joined.uplift), 4),
            "auuc_vs_truth_score": round(normalized_truth_auuc(tau, joined.p_sent), 4),
            "qini_observed": round(qini, 5),
            "incremental_revisits": {},
        }
        for share in BUDGETS:
            k = round(share * len(tau))
            gains = {
                "uplift": gain_at_budget(tau, joined.uplift, k),
                "score": gain_at_budget(tau, joined.p_sent, k),
                "send_to_all": float(tau.sum() * k / max(len(tau), 1)),
            }
            entry["incremental_revisits"][f"{int(share * 100)}%"] = {
                name: round(g, 1) for name, g in gains.items()
            }
            for name, g in gains.items():
                totals[name][f"{int(share * 100)}%"] = (
                    totals[name].get(f"{int(share * 100)}%", 0.0) + g
                )
        entry["incremental_revisits"]["100%"] = round(float(tau.sum()), 1)
        per_trigger[trigger] = entry
    return {
        "fit_seconds": round(model.seconds, 2),
        "triggers": per_trigger,
        "incremental_revisits_all_triggers": {
            name: {b: round(v, 1) for b, v in by.items()} for name, by in totals.items()
        },
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--data-dir", type=Path, help="a finished demo's data directory")
    options = parser.parse_args(argv)
    if options.data_dir:
        result = evaluate(options.data_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-uplift-") as tmp:
            _demo(options.customers, Path(tmp))
            result = evaluate(Path(tmp))
    ups = result["pooled"]["incremental_revisits_all_triggers"]
    result = {
        "bench": "uplift",
        "customers": options.customers,
        **result,
        "uplift_beats_score_at_25pct": ups["uplift"].get("25%", 0) > ups["score"].get("25%", 0),
        "uplift_beats_send_to_all_at_25pct": ups["uplift"].get("25%", 0)
        > ups["send_to_all"].get("25%", 0),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result, default=lambda v: float(np.asarray(v))))
    return result


if __name__ == "__main__":
    main()
