"""Appointment CSV drops → validation → embedded ClickHouse, rows/s end to end.

Generates its own files (numpy + pyarrow, UTF-8 with BOM, SOURCES.md header), then per
run loads them with `load_crm_exports` into a fresh embedded warehouse and times it
(`reload_s`: loading them again, a no-op). The files are flushed to disk before the
first run, and each run's background merge of its parts is waited for (not timed,
reported as `background_merge_s`) so that the next run does not share the CPU with
it. Also measures, on one prepared batch, the vectorised suite vs Great Expectations.

    .venv/bin/python -m benchmarks.bench_file_ingestion --rows 10000000 --files 10 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

import warehouse
from ingestion.crm import files, load_crm_exports
from ingestion.crm.files import read_csv
from ingestion.crm.mapping import load_field_map, prepare
from ingestion.quality import validate
from revisit.settings import DEV_ID_KEY


def write_appointments(path: Path, rows: int, offset: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = np.arange(offset, offset + rows)
    start = 1_700_000_000_000 + rng.integers(0, 86_400_000 * 365, rows)
    status = np.array(["completed", "scheduled", "cancelled", "no_show"])[
        rng.choice(4, rows, p=[0.7, 0.1, 0.15, 0.05])
    ]
    cents = rng.integers(50_000, 500_000, rows)
    text = np.char.add(
        np.char.add((cents // 100).astype(str), "."), np.char.zfill((cents % 100).astype(str), 2)
    )
    amount = pa.compute.if_else(pa.array(status == "completed"), pa.array(text), None)
    ts = pa.array(start, pa.timestamp("ms", "UTC"))
    table = pa.table(
        {
            "id": pa.compute.binary_join_element_wise("a", pa.array(ids.astype(str)), ""),
            "business_id": pa.array(np.array(["b1", "b2", "b3"])[ids % 3]),
            "client_id": pa.array(np.char.add("c", (ids % 200_003).astype(str))),
            "location_id": pa.array(np.array(["l1", "l2"])[ids % 2]),
            "service_id": pa.array(np.char.add("s", (ids % 40).astype(str))),
            "status": pa.array(status),
            "start_at": pa.compute.strftime(ts, format="%Y-%m-%dT%H:%M:%SZ"),
            "amount": amount,
            "currency": pa.array(np.full(rows, "RUB")),
            "promo_offer_id": pa.nulls(rows, pa.string()),
            "created_at": pa.compute.strftime(ts, format="%Y-%m-%dT%H:%M:%SZ"),
            "updated_at": pa.compute.strftime(ts, format="%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    with path.open("wb") as handle:
        handle.write("\ufeff".encode())
        pacsv.write_csv(table, handle, pacsv.WriteOptions(quoting_style="needed"))


def _wait_for_merges(client: warehouse.Client, quiet_s: float = 1.0) -> float:
    """Seconds until no merge has run in raw for `quiet_s` (polled)."""
    start = time.perf_counter()
    quiet_since = start
    while time.perf_counter() - quiet_since < quiet_s:
        if client.command("SELECT count() FROM system.merges WHERE database = 'raw'"):
            quiet_since = time.perf_counter()
        time.sleep(0.05)
    return time.perf_counter() - start - quiet_s


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread, the engine's included
    return usage.ru_utime + usage.ru_stime


def profile_one_file(
    work: Path, exports: Path, path: Path, passes: int = 3
) -> dict[str, dict[str, float]]:
    """CPU-seconds per stage of loading `path` on each path, the median of `passes` loads
    (each into fresh warehouses; one load's stages vary by a few hundredths)."""
    samples = [_profile_pass(work / f"profile{k}", exports, path) for k in range(passes)]
    return {
        name: {
            **{
                stage: round(statistics.median(s[name][stage] for s in samples), 3)
                for stage in stages
            },
            "total": round(statistics.median(sum(s[name].values()) for s in samples), 3),
        }
        for name, stages in samples[0].items()
    }


def _profile_pass(work: Path, exports: Path, path: Path) -> dict[str, dict[str, float]]:
    """CPU-seconds per stage of loading `path` once on each path (fresh warehouses)."""
    from warehouse.load import ArrowSource, open_batch, prepare_raw

    field_map = load_field_map()
    entity_map = field_map.entity("appointments")
    out: dict[str, dict[str, float]] = {}
    with warehouse.connect(f"chdb://{work / 'profile_reference'}") as client:
        prepare_raw(client)
        stages, start = {}, _cpu()
        batch_id = files.batch_id_of(path, exports, "appointments", field_map)
        stages["hash"], start = _cpu() - start, _cpu()
        frame = read_csv(path, entity_map, {})
        stages["read"], start = _cpu() - start, _cpu()
        row_ref = pd.Series(np.arange(2, len(frame) + 2))
        prepared = prepare(entity_map, frame, source_kind="crm_file", row_ref=row_ref,
                           business_id="b1", id_key=DEV_ID_KEY)  # fmt: skip
        stages["typing_and_suite"], start = _cpu() - start, _cpu()
        prepared_file = files.PreparedFile(entity_map.table, batch_id, path.name, prepared)
        files.load_prepared(client, prepared_file)
        stages["insert"] = _cpu() - start
        out["reference"] = stages
    with warehouse.connect(f"chdb://{work / 'profile_engine'}") as client:
        prepare_raw(client)
        stages, start = {}, _cpu()
        batch_id = files.batch_id_of(path, exports, "appointments", field_map)
        stages["hash"], start = _cpu() - start, _cpu()
        table = files.read_csv_arrow(path, entity_map, {})
        plan = files._engine_plan(entity_map, table.column_names, "b1", typed=True)
        assert plan is not None
        rows = files._engine_rows(table, typed=True)
        n = table.num_rows
        stages["read"], start = _cpu() - start, _cpu()
        # As load_csv does it: one INSERT … SELECT … WHERE <accepted>; a clean file
        # needs no second query for the rejected rows.
        batch = open_batch(client, entity_map.table, batch_id=batch_id, source=path.name,
                           collapse_on_insert=False)  # fmt: skip
        assert batch is not None
        with ArrowSource(client, rows) as source:
            version = np.uint64(time.time_ns())
            slow = files._insert_accepted(batch, source, plan, n, version, path.name)
            assert slow is not None and len(slow) == 0
        batch.finish()
        stages["accept_and_insert"] = _cpu() - start
        out["engine"] = stages
    shutil.rmtree(work, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--reference", action="store_true", help="time the reference (pandas) CSV path"
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_files_"))
    try:
        exports = work / "exports" / "b1"
        exports.mkdir(parents=True)
        per_file = args.rows // args.files
        for k in range(args.files):
            write_appointments(exports / f"appointments_{k:04d}.csv", per_file, k * per_file, k)
        total = per_file * args.files
        size_mb = sum(p.stat().st_size for p in exports.iterdir()) / 2**20
        # Flush the freshly written files first: the timed load should not share the
        # disk with the write-back of the files it reads.
        os.sync()
        timings, settle = [], []
        for run in range(args.runs):
            dsn = f"chdb://{work / f'wh{run}'}"
            with warehouse.connect(dsn) as client:
                start = time.perf_counter()
                results, errors = load_crm_exports(
                    client, work / "exports", id_key=DEV_ID_KEY, csv_engine=not args.reference
                )
                timings.append(time.perf_counter() - start)
                loaded = sum(r.rows_loaded for r in results)
                assert not errors and loaded == total, (errors, loaded, total)
                # Reloading the same files is a no-op (each file a done batch).
                start = time.perf_counter()
                again, _ = load_crm_exports(client, work / "exports", id_key=DEV_ID_KEY)
                reload_s = time.perf_counter() - start
                assert all(r.skipped for r in again)
                # The parts merge in the background after the load; let them finish
                # here so that the next run does not share the CPU with them.
                settle.append(_wait_for_merges(client))
            shutil.rmtree(work / f"wh{run}")
        profile = profile_one_file(work, work / "exports", exports / "appointments_0000.csv")
        # Validation cost on one file: vectorised suite vs Great Expectations.
        entity_map = load_field_map().entity("appointments")
        first = exports / "appointments_0000.csv"
        start = time.perf_counter()
        frame = read_csv(first, entity_map, {})
        read_s = time.perf_counter() - start
        prepared = prepare(
            entity_map,
            frame,
            source_kind="bench",
            row_ref=pd.Series(np.arange(len(frame))),
            id_key=DEV_ID_KEY,
        )
        engines = {}
        for engine in ("pandas", "gx"):
            start = time.perf_counter()
            validate(prepared.frame, "crm_appointments", source="bench", engine=engine)
            engines[engine] = time.perf_counter() - start
        median = statistics.median(timings)
        result = {
            "bench": "file_ingestion",
            "rows": total,
            "files": args.files,
            "csv_mb": round(size_mb, 1),
            "runs": args.runs,
            "median_s": round(median, 3),
            "rows_per_s": round(total / median),
            "csv_path": "reference" if args.reference else "engine",
            "target_rows_per_s": 2_000_000,
            "reload_s": round(reload_s, 3),
            "background_merge_s": round(statistics.median(settle), 3),
            "one_file_rows": len(frame),
            "one_file_read_s": round(read_s, 3),
            "suite_pandas_s": round(engines["pandas"], 3),
            "suite_gx_s": round(engines["gx"], 3),
            "gx_over_pandas": round(engines["gx"] / engines["pandas"], 1),
            "one_file_cpu_s": profile,
            "cpu_count": os.cpu_count(),
            "mem_total_gb": round(
                os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1
            ),
        }
        print(json.dumps(result))
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
