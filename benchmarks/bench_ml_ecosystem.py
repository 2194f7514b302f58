"""The revisit model on the synthetic ecosystem, against its known truth.

Runs `revisit demo --customers N` into a fresh data directory (generation, ingestion,
dbt), then trains and evaluates the model exactly as the `ml/revisit_model` asset does
— evaluation cutoff = as_of − 30 days — and joins the held-out customers to the
generator's true probability at that cutoff. Reports ROC-AUC, PR-AUC, Brier, log loss,
ECE and top-decile lift of the model, every baseline, and the truth (the ceiling).

    .venv/bin/python -m benchmarks.bench_ml_ecosystem --customers 20000
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

import pandas as pd

import warehouse
from ingestion.identity import customer_id
from ml.features import LABEL
from ml.metrics import score_metrics
from ml.train import TrainConfig, train_and_evaluate
from revisit.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--horizon-days", type=int, default=30)
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-ml-eco-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REVISIT_")}
        env["REVISIT_DATA_DIR"] = tmp
        subprocess.run(
            [str(Path(sys.executable).with_name("revisit")), "demo", "--customers",
             str(options.customers)],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        settings = Settings(data_dir=Path(tmp))
        manifest = json.loads((settings.source_dir / "manifest.json").read_text())
        cutoff = dt.date.fromisoformat(manifest["as_of"]) - dt.timedelta(options.horizon_days)
        with warehouse.connect(settings.warehouse_dsn) as client:
            run = train_and_evaluate(client, cutoff, TrainConfig(horizon_days=options.horizon_days))
        truth = pd.read_parquet(settings.source_dir / "truth" / "revisit_probability.parquet")
    truth = truth[truth.as_of == cutoff].copy()
    # The installation's ids: the truth files carry phones, the warehouse keyed ids.
    truth["customer_id"] = customer_id(truth.phone, settings.id_key)
    truth = truth.groupby(["business_id", "customer_id"], as_index=False).probability.max()
    joined = run.evaluation.merge(truth, on=["business_id", "customer_id"], how="inner")
    y = joined[LABEL].to_numpy(int)
    metrics = {name: score_metrics(y, joined[name].to_numpy()) for name in run.metrics}
    metrics["truth"] = score_metrics(y, joined.probability.to_numpy())
    table = {
        name: {k: round(float(v), 4) for k, v in m.items() if k != "n"}
        for name, m in metrics.items()
    }
    result = {
        "bench": "ml_ecosystem",
        "customers": options.customers,
        "evaluation_cutoff": str(cutoff),
        "held_out": len(run.evaluation),
        "matched_to_truth": len(joined),
        "metrics": table,
        "model_beats_baselines_auc": all(
            table["model"]["roc_auc"] > table[b]["roc_auc"] for b in run.metrics if b != "model"
        ),
        "model_beats_baselines_brier": all(
            table["model"]["brier"] < table[b]["brier"] for b in run.metrics if b != "model"
        ),
        "auc_gap_to_truth": round(table["truth"]["roc_auc"] - table["model"]["roc_auc"], 4),
        "train_seconds": run.seconds,
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
