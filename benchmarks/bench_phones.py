"""Customers with phone normalisation: rows/s of normalize_phones + customer_id.

Input is generated here (numpy): RU/KZ numbers typed in the usual spellings, each number
appearing ~2× (customers repeat across businesses and loads), 1% garbage. Baseline in
the same run: plain phonenumbers parse+validate+format per row on a sample.

    .venv/bin/python -m benchmarks.bench_phones --rows 1000000 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import pandas as pd

from ingestion.identity import customer_id, normalize_phones, parse_one


def make_phones(rows: int, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    distinct = max(rows // 2, 1)
    national = np.where(
        rng.random(distinct) < 0.8,
        rng.integers(9_000_000_000, 9_999_999_999, distinct),  # RU mobiles
        rng.integers(7_000_000_000, 7_089_999_999, distinct),  # KZ mobiles
    ).astype(str)
    nat = pd.Series(national)
    spelled = [
        "+7" + nat,
        "8" + nat,
        "+7 (" + nat.str[:3] + ") " + nat.str[3:6] + "-" + nat.str[6:8] + "-" + nat.str[8:],
        "8 " + nat.str[:3] + " " + nat.str[3:6] + " " + nat.str[6:8] + " " + nat.str[8:],
        nat,
        "7" + nat,
    ]
    pick = rng.integers(0, len(spelled), distinct)
    out = spelled[0].copy()
    for k, series in enumerate(spelled):
        out[pick == k] = series[pick == k]
    out[rng.random(distinct) < 0.01] = "n/a"
    return pd.Series(out.to_numpy()[rng.integers(0, distinct, rows)])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    phones = make_phones(args.rows)
    timings = []
    for _ in range(args.runs):
        start = time.perf_counter()
        out = normalize_phones(phones, "RU")
        customer_id(out["phone_e164"], b"bench-customer-id-key")
        timings.append(time.perf_counter() - start)
    sample = phones.iloc[: min(2000, len(phones))].tolist()
    start = time.perf_counter()
    for raw in sample:
        parse_one(raw, "RU")
    baseline = (time.perf_counter() - start) / len(sample)
    median = statistics.median(timings)
    result = {
        "bench": "phones",
        "rows": args.rows,
        "runs": args.runs,
        "median_s": round(median, 4),
        "rows_per_s": round(args.rows / median),
        "target_rows_per_s": 100_000,
        "baseline_phonenumbers_rows_per_s": round(1 / baseline),
        "speedup_vs_baseline": round(args.rows / median * baseline, 1),
        "invalid_share": round(float(out["error"].notna().mean()), 4),
        "cpu_count": os.cpu_count(),
        "mem_total_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
