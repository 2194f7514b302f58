"""Scoring every customer with the promoted model into `ml.revisit_scores`.

A run is (model_version, scored_at): `scored_at` is the cutoff the features are computed
as of. Rerunning a run deletes its rows first and inserts them again, so the table keeps
one copy per run and the history of earlier runs.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from clickhouse_connect.driver.client import Client
from threadpoolctl import threadpool_limits

from ml.contract import SCORES_TABLE, ensure_scores_table
from ml.features import as_cutoff, build_features
from ml.registry import load_model


@dataclass(frozen=True)
class ScoringSummary:
    """What a scoring run wrote."""

    model_version: str
    scored_at: pd.Timestamp
    rows: int
    mean_p_revisit: float
    seconds: dict[str, float]


def deciles_within_business(business_id: pd.Series, p: np.ndarray) -> np.ndarray:
    """Decile 1..10 per business, 1 = the tenth with the highest probability; ties keep
    their row order (a rank "first"). One stable sort instead of two pandas group-bys
    (about 0.4 s of a 1M-customer scoring)."""
    p = np.asarray(p, dtype=float)
    codes, _ = pd.factorize(business_id, sort=False)
    order = np.lexsort((-p, codes))  # stable: equal probabilities stay in row order
    grouped = codes[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    rank0 = np.arange(len(order)) - np.repeat(starts, sizes)
    out = np.empty(len(order), dtype=np.uint8)
    out[order] = 1 + np.floor(10 * rank0 / np.repeat(sizes, sizes))
    return out


def _arrow_strings(column: pd.Series) -> pa.Array:
    """The column as Arrow strings, without a detour through a million Python objects
    when pandas already holds it in Arrow."""
    return pa.array(column, from_pandas=True).cast(pa.string())


def score_customers(
    client: Client,
    models_dir: Path,
    scored_at: dt.date | dt.datetime | str,
    *,
    version: str | None = None,
    reason_codes: int = 3,
    threads: int | None = None,
) -> ScoringSummary:
    """Score every (business, customer) with a visit before `scored_at` and store the run.

    Uses the promoted model unless `version` is given. Idempotent per
    (model_version, scored_at).
    """
    model_version, model = load_model(models_dir, version)
    cutoff = as_cutoff(scored_at)
    t0 = time.perf_counter()
    frame = build_features(client, [cutoff], model.horizon_days, labels=False)
    t1 = time.perf_counter()
    with threadpool_limits(limits=threads):
        p = model.predict(frame)
        codes = (
            model.reason_codes(frame, top=reason_codes)
            if reason_codes
            else pa.array([[]] * len(p), type=pa.list_(pa.string()))
        )
    t2 = time.perf_counter()
    # Arrow end to end: no per-row Python objects for a million rows.
    out = pa.table(
        {
            "business_id": _arrow_strings(frame["business_id"]),
            "customer_id": _arrow_strings(frame["customer_id"]),
            "scored_at": pa.array(
                np.full(len(p), cutoff.value // 1_000_000), type=pa.timestamp("ms", tz="UTC")
            ),
            "model_version": pa.array(np.full(len(p), model_version), type=pa.string()),
            "horizon_days": pa.array(np.full(len(p), model.horizon_days), type=pa.uint16()),
            "p_revisit": pa.array(p.astype(np.float64)),
            "decile": pa.array(deciles_within_business(frame["business_id"], p)),
            "reason_codes": codes,
        }
    )
    ensure_scores_table(client)
    client.command(
        f"DELETE FROM {SCORES_TABLE} WHERE model_version = {{v:String}} "
        "AND scored_at = {t:DateTime64(3, 'UTC')}",
        parameters={"v": model_version, "t": cutoff.to_pydatetime()},
        settings={"lightweight_deletes_sync": 2},
    )
    if out.num_rows:
        client.insert_arrow(SCORES_TABLE, out)
    t3 = time.perf_counter()
    return ScoringSummary(
        model_version=model_version,
        scored_at=cutoff,
        rows=out.num_rows,
        mean_p_revisit=float(p.mean()) if len(p) else float("nan"),
        seconds={
            "features": round(t1 - t0, 2),
            "predict": round(t2 - t1, 2),
            "write": round(t3 - t2, 2),
        },
    )
