"""Peers side by side: the `customer_rfm` model vs pandas vs PostgreSQL on the same visits.

One run, one data set: raw CRM tables filled inside ClickHouse (`numbers()`, the shape
of `bench_dbt`) with as many appointments as it takes for `--visits` completed visits
of `--customers` customers, then `dbt run` of everything upstream of `customer_rfm`
(untimed). `marts.fct_visits` (business_id, customer_id, visited_at, amount) is exported
once and every engine computes the same RFM from it:

- **chDB / dbt**: `dbt build --select customer_rfm` (the model and its data tests) in a
  child process: wall time, dbt's own execution time of the model, peak RSS of the dbt
  process (which includes dbt itself, ~0.3 GB). Also the model's compiled SQL run
  directly on chDB (`CREATE TABLE … AS`) in a child process, for the engine without dbt.
- **pandas**: idiomatic and vectorised (one groupby for recency/frequency/monetary,
  `groupby().rank(method="min")` for the terciles exactly as the SQL's RANK()), in a
  child process reading a Parquet export (money as int64 cents, exact): compute time
  (the read is reported apart) and the process's peak RSS.
- **PostgreSQL** (the newest installed, a throwaway cluster on 127.0.0.1, tuned:
  shared_buffers, work_mem, 2 parallel workers per gather, fsync off): an UNLOGGED table
  loaded by COPY, indexed and VACUUM ANALYZEd (reported as `pg_load_s`), then the
  timed query `CREATE UNLOGGED TABLE … AS <RFM>`. Memory: sampled every 20 ms, the sum
  of the backends' private RSS (RssAnon) plus the largest shared RSS (shared buffers
  are counted once).

The three results are compared row for row (every customer; recency, frequency,
monetary, the three scores and the segment) and the benchmark fails on a difference.

    .venv/bin/python -m benchmarks.bench_peers --visits 20000000 --customers 1000000
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import pwd
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

import warehouse
from benchmarks.bench_dbt import AS_OF, FILL, HISTORY, customer_id_sql
from revisit.settings import PROJECT_ROOT, Settings
from warehouse.dbt_runner import run_dbt, run_target_path
from warehouse.load import prepare_raw

WINDOW_DAYS = 365
SEGMENT_MAP = PROJECT_ROOT / "dbt_project" / "seeds" / "rfm_segment_map.csv"
# Share of bench_dbt's appointments that are completed visits up to AS_OF: 6 of 8
# statuses are `completed`, and 540 of the 570 days of history precede AS_OF.
VISIT_SHARE = 6 / 8 * 540 / 570
COMPARED = ["recency_days", "frequency", "monetary_cents", "r_score", "f_score", "m_score",
            "segment"]  # fmt: skip


# --- the RFM logic in pandas and in PostgreSQL -------------------------------------------


def rfm_pandas(
    visits: pd.DataFrame, as_of: date, segments: pd.DataFrame, window_days: int = WINDOW_DAYS
) -> pd.DataFrame:
    """customer_rfm in pandas. `visits`: business_id, customer_id, visited_at (UTC),
    amount_cents (int64). Same definitions as the rfm_scores / tercile_score macros."""
    day0 = pd.Timestamp(as_of, tz="UTC")
    visits = visits[visits["visited_at"] < day0 + pd.Timedelta(days=1)]
    in_window = visits["visited_at"].dt.floor("D") > day0 - pd.Timedelta(days=window_days)
    per_customer = (
        visits.assign(in_window=in_window, window_cents=visits["amount_cents"].where(in_window, 0))
        .groupby(["business_id", "customer_id"], sort=False, observed=True)
        .agg(
            last_visit_at=("visited_at", "max"),
            frequency=("in_window", "sum"),
            monetary_cents=("window_cents", "sum"),
        )
    )
    per_customer["recency_days"] = (day0 - per_customer["last_visit_at"].dt.floor("D")).dt.days
    by_business = per_customer.groupby(level="business_id", sort=False)
    n = by_business["frequency"].transform("size").to_numpy()
    for score, measure, worst_first_descending in (
        ("r_score", "recency_days", True),
        ("f_score", "frequency", False),
        ("m_score", "monetary_cents", False),
    ):
        # RANK() ordered worst first: rank(method="min"), ascending unless worst is largest.
        rank = by_business[measure].rank(method="min", ascending=not worst_first_descending)
        per_customer[score] = 1 + (3 * (rank.to_numpy(dtype=np.int64) - 1)) // n
    per_customer["rfm_cell"] = (
        "R" + per_customer["r_score"].astype(str) + "F" + per_customer["f_score"].astype(str)
        + "M" + per_customer["m_score"].astype(str)
    )  # fmt: skip
    out = per_customer.reset_index().merge(segments, on="rfm_cell", how="inner")
    return out


def rfm_postgres_sql(as_of: date, window_days: int = WINDOW_DAYS) -> str:
    """customer_rfm in PostgreSQL on `visits` (timestamps are UTC, `timestamp`)."""
    score = "1 + (3 * (rank() over (partition by business_id order by {m} {o}) - 1)) / n"
    return f"""
        with per_customer as (
            select business_id, customer_id, max(visited_at) as last_visit_at,
                date '{as_of}' - max(visited_at)::date as recency_days,
                count(*) filter (where visited_at::date > date '{as_of}' - {window_days})
                    as frequency,
                coalesce(sum(amount) filter (
                    where visited_at::date > date '{as_of}' - {window_days}), 0) as monetary
            from visits
            where visited_at < date '{as_of}' + 1
            group by business_id, customer_id
        ), scored as (
            select *,
                {score.format(m="recency_days", o="desc")} as r_score,
                {score.format(m="frequency", o="asc")} as f_score,
                {score.format(m="monetary", o="asc")} as m_score
            from (select *, count(*) over (partition by business_id) as n
                  from per_customer) as c
        )
        select s.business_id, s.customer_id, date '{as_of}' as as_of_date, s.last_visit_at,
            s.recency_days, s.frequency, s.monetary, s.r_score, s.f_score, s.m_score,
            m.rfm_cell, m.segment
        from scored as s
        inner join rfm_segment_map as m
            on m.rfm_cell = 'R' || s.r_score || 'F' || s.f_score || 'M' || s.m_score
    """


# --- a tuned throwaway PostgreSQL -----------------------------------------------------------


def _postgres_bin() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    if not found:
        raise SystemExit("PostgreSQL binaries not found under /usr/lib/postgresql")
    return Path(found[-1]).parent


@contextlib.contextmanager
def postgres(base: Path, settings: dict[str, str]) -> Iterator[tuple[int, Path]]:
    """A cluster in `base` on 127.0.0.1 (port, data dir); stopped at the end."""
    bin_dir = _postgres_bin()
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to `postgres`
        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    data = base / "data"
    subprocess.run(
        [*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
         "-E", "UTF8", "--locale=C", "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = " ".join(
        [f"-c listen_addresses=127.0.0.1 -p {port} -k {base}"]
        + [f"-c {k}={v}" for k, v in settings.items()]
    )
    subprocess.run(
        [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options,
         "-l", str(base / "server.log"), "-w", "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield port, data
    finally:
        subprocess.run(
            [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            capture_output=True,
        )


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _postgres_pids(postmaster: int) -> list[int]:
    pids = [postmaster]
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster:
                pids.append(int(stat.split("/")[2]))
    return pids


def _pg_cpu(postmaster: int, backend: int) -> float:
    """CPU seconds so far of the backend plus the postmaster's reaped children (the
    parallel workers of a finished query)."""
    tick = os.sysconf("SC_CLK_TCK")
    own = Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()
    main = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields after the name, from 0: utime 11, stime 12, cutime 13, cstime 14.
    return (int(own[11]) + int(own[12]) + int(main[13]) + int(main[14])) / tick


class PostgresMemory:
    """Peak over 20 ms samples of Σ RssAnon (private) + max RssShmem (shared, once)."""

    def __init__(self, data_dir: Path) -> None:
        self.postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = _postgres_pids(self.postmaster)
            anon = sum(_status_kb(p, "RssAnon") for p in pids)
            shared = max(_status_kb(p, "RssShmem") for p in pids)
            self.peak_kb = max(self.peak_kb, anon + shared)
            time.sleep(0.02)

    def __enter__(self) -> PostgresMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- child processes -------------------------------------------------------------------------


def _measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float, str]:
    """Run a child: (wall seconds, CPU seconds, peak RSS in MiB, its stdout). Raises on
    failure.

    Peak RSS: the child's high-water mark (VmHWM, polled every 50 ms; dbt, pandas and
    chDB work in the one process). rusage's ru_maxrss would not do: Linux carries the
    parent's RSS at fork over into the child's maximum."""
    started = time.perf_counter()
    peak_kb = 0
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=PROJECT_ROOT, text=True)
        while True:
            peak_kb = max(peak_kb, _status_kb(proc.pid, "VmHWM"))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        cpu = usage.ru_utime + usage.ru_stime
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed ({proc.returncode}): {(stderr or stdout)[-3000:]}")
    return wall, cpu, peak_kb / 1024, stdout


def _rss_mib() -> float:
    return _status_kb(os.getpid(), "VmRSS") / 1024


def pandas_worker(parquet: Path, result: Path, as_of: date) -> None:
    """Child process: read the visits, compute RFM, write the result; prints timings."""
    baseline = _rss_mib()
    started = time.perf_counter()
    visits = pd.read_parquet(parquet)
    read_s = time.perf_counter() - started
    loaded = _rss_mib()
    started, cpu = time.perf_counter(), time.process_time()
    rfm = rfm_pandas(visits, as_of, pd.read_csv(SEGMENT_MAP, dtype=str))
    compute_s, compute_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    rfm[["business_id", "customer_id", *COMPARED]].to_parquet(result)
    timings = {"read_s": read_s, "compute_s": compute_s, "compute_cpu_s": compute_cpu_s}
    print(json.dumps({**timings, "baseline_rss_mib": baseline, "loaded_rss_mib": loaded}))


def chdb_worker(path: Path, sql_file: Path, query_settings: dict[str, object]) -> None:
    """Child process: the model's compiled SQL as `CREATE TABLE … AS` on chDB, with the
    model's `query_settings` (which dbt appends to its insert, not to the compiled SQL);
    timings."""
    from chdb import connect as chdb_connect

    connection = chdb_connect(str(path))
    connection.query("DROP TABLE IF EXISTS marts.customer_rfm_direct")
    settings = ", ".join(f"{name} = {value!r}" for name, value in query_settings.items())
    baseline = _rss_mib()
    started, cpu = time.perf_counter(), time.process_time()
    connection.query(
        "CREATE TABLE marts.customer_rfm_direct ENGINE = MergeTree ORDER BY tuple() AS "
        + sql_file.read_text()
        + (f"\nSETTINGS {settings}" if settings else "")
    )
    elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    # The floor under the model, same process and settings: reading the four columns it
    # needs, and the bare per-customer group-by (no window, scores or segments).
    floors = {}
    for name, sql in (
        ("scan", "SELECT sum(length(business_id) + length(customer_id)), "
                 "sum(toUnixTimestamp64Milli(visited_at)), sum(amount) FROM marts.fct_visits"),
        ("group_by", "SELECT business_id, customer_id, max(visited_at), count(), sum(amount) "
                     "FROM marts.fct_visits GROUP BY business_id, customer_id"),
    ):  # fmt: skip
        floor_started, floor_cpu = time.perf_counter(), time.process_time()
        connection.query(sql + (f" SETTINGS {settings}" if settings else ""), "Null")
        floors[f"{name}_s"] = time.perf_counter() - floor_started
        floors[f"{name}_cpu_s"] = time.process_time() - floor_cpu
    connection.close()
    print(json.dumps({"query_s": elapsed, "query_cpu_s": cpu_s, "baseline_rss_mib": baseline,
                      **floors}))  # fmt: skip


# --- the run ----------------------------------------------------------------------------------


def fill(settings: Settings, customers: int, visits: int) -> dict[str, int]:
    sizes = {
        "people": customers,
        "businesses": max(6, customers // 400),
        "records": int(customers * 1.12),
        "appointments": round(visits / VISIT_SHARE),
    }
    with warehouse.connect(settings.warehouse_dsn) as client:
        prepare_raw(client)
        for statement in FILL[:3]:  # businesses, customers, appointments
            sql = statement.format(
                as_of=AS_OF, history=HISTORY, customer_id=customer_id_sql(settings), **sizes
            )
            client.command(sql)
    return sizes


def _compare(name: str, ours: pd.DataFrame, theirs: pd.DataFrame) -> int:
    """Rows that differ between two RFM results (keys missing on either side count)."""
    key = ["business_id", "customer_id"]
    merged = ours[key + COMPARED].merge(
        theirs[key + COMPARED], on=key, how="outer", suffixes=("", "_other"), indicator=True
    )
    differs = merged["_merge"] != "both"
    for column in COMPARED:
        differs |= merged[column].astype(str) != merged[f"{column}_other"].astype(str)
    if differs.any():
        print(f"{name}: {int(differs.sum())} rows differ, e.g.\n{merged[differs].head()}",
              file=sys.stderr)  # fmt: skip
    return int(differs.sum())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=20_000_000)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--pg-shared-buffers", default="4GB")
    parser.add_argument("--pg-work-mem", default="1GB")
    parser.add_argument("--pandas-worker", nargs=3, metavar=("PARQUET", "RESULT", "AS_OF"))
    parser.add_argument("--chdb-worker", nargs=3, metavar=("PATH", "SQL", "SETTINGS_JSON"))
    options = parser.parse_args(argv)
    if options.pandas_worker:
        parquet, result, as_of = options.pandas_worker
        pandas_worker(Path(parquet), Path(result), date.fromisoformat(as_of))
        return {}
    if options.chdb_worker:
        path, sql, query_settings = options.chdb_worker
        chdb_worker(Path(path), Path(sql), json.loads(query_settings))
        return {}
    as_of = date.fromisoformat(AS_OF)
    base = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    os.chmod(base, 0o755)
    try:
        return _run(options, base, as_of)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run(options: argparse.Namespace, base: Path, as_of: date) -> dict:
    settings = Settings(data_dir=base / "data")
    config = settings.dbt()
    dbt_vars = ["--vars", json.dumps({"as_of_date": AS_OF})]
    started = time.perf_counter()
    sizes = fill(settings, options.customers, options.visits)
    run_dbt(["seed", "--select", "rfm_segment_map", "--quiet"], config, capture=True)
    run_dbt(["run", "--select", "+fct_visits", *dbt_vars, "--quiet"], config, capture=True)
    setup_s = time.perf_counter() - started
    exports = base / "exports"
    exports.mkdir()
    os.chmod(exports, 0o755)
    parquet, csv = exports / "visits.parquet", exports / "visits.csv"
    with warehouse.connect(settings.warehouse_dsn) as client:
        visits = client.command("SELECT count() FROM marts.fct_visits")
        client.command(
            "SELECT business_id, customer_id, visited_at, toInt64(amount * 100) AS amount_cents "
            f"FROM marts.fct_visits INTO OUTFILE '{parquet}' FORMAT Parquet"
        )
        client.command(
            "SELECT business_id, customer_id, formatDateTime(visited_at, '%Y-%m-%d %H:%i:%S.%f')"
            f", amount FROM marts.fct_visits INTO OUTFILE '{csv}' FORMAT CSV"
        )
    os.chmod(csv, 0o644)

    # chDB through dbt: the model and its data tests, as the pipeline runs it.
    dbt_cmd = [str(Path(sys.executable).with_name("dbt")), "build", "--select", "customer_rfm",
               *dbt_vars, "--quiet", "--project-dir", str(config.project_dir),
               "--profiles-dir", str(config.profiles_dir)]  # fmt: skip
    from warehouse.dbt_runner import dbt_env

    env = {**os.environ, **dbt_env(config)}
    dbt_runs, model_runs, dbt_rss, dbt_cpu = [], [], [], []
    for _ in range(options.runs):
        wall, cpu, rss, _ = _measured(dbt_cmd, env)
        dbt_cpu.append(cpu)
        results = json.loads((run_target_path(config) / "run_results.json").read_text())
        failed = [
            r["unique_id"] for r in results["results"] if r["status"] not in ("success", "pass")
        ]
        assert not failed, failed
        model = next(r for r in results["results"] if r["unique_id"].endswith(".customer_rfm"))
        dbt_runs.append(wall)
        model_runs.append(model["execution_time"])
        dbt_rss.append(rss)
    tests = len(results["results"]) - 1
    compiled = next(run_target_path(config).glob("compiled/**/customer_rfm.sql"))
    manifest = json.loads((run_target_path(config) / "manifest.json").read_text())
    query_settings = next(
        node["config"].get("query_settings") or {}
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["name"] == "customer_rfm"
    )
    direct_runs, direct_rss, direct_cpu, floors = [], [], [], []
    for _ in range(options.runs):
        _, _, rss, out = _measured(
            [sys.executable, "-m", "benchmarks.bench_peers", "--chdb-worker",
             str(settings.warehouse_dsn.removeprefix("chdb://")), str(compiled),
             json.dumps(query_settings)]
        )  # fmt: skip
        timing = json.loads(out.splitlines()[-1])
        direct_runs.append(timing["query_s"])
        direct_cpu.append(timing["query_cpu_s"])
        floors.append(timing)
        direct_rss.append(rss)
    with warehouse.connect(settings.warehouse_dsn) as client:
        ours = client.query_df(
            "SELECT business_id, customer_id, recency_days, frequency, "
            "toInt64(monetary * 100) AS monetary_cents, r_score, f_score, m_score, segment "
            "FROM marts.customer_rfm"
        )
        direct_diff = client.command(
            "SELECT count() FROM (SELECT * FROM marts.customer_rfm EXCEPT "
            "SELECT * FROM marts.customer_rfm_direct)"
        )

    # pandas, in a child process of its own (peak RSS is the process's).
    result = exports / "rfm_pandas.parquet"
    pandas_runs, pandas_read, pandas_rss, pandas_base, pandas_cpu = [], [], [], [], []
    for _ in range(options.runs):
        _, _, rss, out = _measured(
            [sys.executable, "-m", "benchmarks.bench_peers", "--pandas-worker", str(parquet),
             str(result), AS_OF]
        )  # fmt: skip
        timing = json.loads(out.splitlines()[-1])
        pandas_runs.append(timing["compute_s"])
        pandas_cpu.append(timing["compute_cpu_s"])
        pandas_read.append(timing["read_s"])
        pandas_rss.append(rss)
        pandas_base.append(timing["baseline_rss_mib"])
    theirs_pandas = pd.read_parquet(result)

    # PostgreSQL.
    pg_settings = {
        "shared_buffers": options.pg_shared_buffers,
        "work_mem": options.pg_work_mem,
        "maintenance_work_mem": "2GB",
        "effective_cache_size": "12GB",
        "max_parallel_workers_per_gather": "2",
        "max_worker_processes": "8",
        "max_parallel_workers": "4",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_wal_size": "8GB",
        "timezone": "UTC",
    }
    import psycopg

    pg_base = base / "pg"
    pg_base.mkdir()
    with (
        postgres(pg_base, pg_settings) as (port, data_dir),
        psycopg.connect(
            f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True
        ) as conn,
    ):
        started = time.perf_counter()
        conn.execute(
            "CREATE UNLOGGED TABLE visits (business_id text NOT NULL, customer_id text "
            "NOT NULL, visited_at timestamp NOT NULL, amount numeric(18, 2) NOT NULL)"
        )
        conn.execute(f"COPY visits FROM '{csv}' WITH (FORMAT csv)")
        copy_s = time.perf_counter() - started
        conn.execute("CREATE INDEX ON visits (business_id, customer_id)")
        conn.execute("VACUUM ANALYZE visits")
        conn.execute("CREATE TABLE rfm_segment_map (rfm_cell text PRIMARY KEY, segment text)")
        with conn.cursor().copy("COPY rfm_segment_map FROM STDIN WITH (FORMAT csv, "
                                "HEADER true)") as copy:  # fmt: skip
            copy.write(SEGMENT_MAP.read_bytes())
        conn.execute("ANALYZE rfm_segment_map")
        pg_load_s = time.perf_counter() - started
        sql = rfm_postgres_sql(as_of)
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql).fetchall())
        pg_runs, pg_mem, pg_cpu = [], [], []
        backend = conn.info.backend_pid
        for _ in range(options.runs):
            conn.execute("DROP TABLE IF EXISTS customer_rfm")
            with PostgresMemory(data_dir) as memory:
                cpu = _pg_cpu(memory.postmaster, backend)
                started = time.perf_counter()
                conn.execute("CREATE UNLOGGED TABLE customer_rfm AS " + sql)
                pg_runs.append(time.perf_counter() - started)
                pg_cpu.append(_pg_cpu(memory.postmaster, backend) - cpu)
            pg_mem.append(memory.peak_kb / 1024)
        rows = conn.execute(
            "SELECT business_id, customer_id, recency_days, frequency, "
            "(monetary * 100)::bigint, r_score, f_score, m_score, segment FROM customer_rfm"
        ).fetchall()
    theirs_pg = pd.DataFrame(rows, columns=["business_id", "customer_id", *COMPARED])

    mismatches = {
        "pandas": _compare("pandas", ours, theirs_pandas),
        "postgres": _compare("postgres", ours, theirs_pg),
        "chdb_direct": int(direct_diff),
    }
    model_s, dbt_s = statistics.median(model_runs), statistics.median(dbt_runs)
    pandas_s, pg_s = statistics.median(pandas_runs), statistics.median(pg_runs)
    dbt_mib, pandas_mib = statistics.median(dbt_rss), statistics.median(pandas_rss)
    direct_s, direct_mib = statistics.median(direct_runs), statistics.median(direct_rss)
    out = {
        "bench": "peers",
        "visits": int(visits),
        "customers_rfm_rows": len(ours),
        "businesses": sizes["businesses"],
        "runs": options.runs,
        "setup_s": round(setup_s, 1),
        "chdb_dbt_build_s": round(dbt_s, 2),
        "chdb_dbt_model_s": round(model_s, 2),
        "chdb_dbt_tests": tests,
        "chdb_direct_s": round(direct_s, 2),
        "chdb_query_settings": query_settings,
        **{
            f"chdb_floor_{key}": round(statistics.median(f[key] for f in floors), 2)
            for key in ("scan_s", "scan_cpu_s", "group_by_s", "group_by_cpu_s")
        },
        "pandas_s": round(pandas_s, 2),
        "pandas_read_s": round(statistics.median(pandas_read), 2),
        "chdb_dbt_cpu_s": round(statistics.median(dbt_cpu), 2),
        "chdb_direct_cpu_s": round(statistics.median(direct_cpu), 2),
        "pandas_cpu_s": round(statistics.median(pandas_cpu), 2),
        "postgres_cpu_s": round(statistics.median(pg_cpu), 2),
        "postgres_cpu_over_chdb_direct_cpu": round(
            statistics.median(pg_cpu) / statistics.median(direct_cpu), 1
        ),
        "pandas_cpu_over_chdb_direct_cpu": round(
            statistics.median(pandas_cpu) / statistics.median(direct_cpu), 1
        ),
        "postgres_s": round(pg_s, 2),
        "pg_load_s": round(pg_load_s, 1),
        "pg_copy_s": round(copy_s, 1),
        "chdb_dbt_peak_rss_mib": round(dbt_mib),
        "chdb_direct_peak_rss_mib": round(direct_mib),
        "pandas_peak_rss_mib": round(pandas_mib),
        "pandas_baseline_rss_mib": round(statistics.median(pandas_base)),
        "postgres_peak_mib": round(statistics.median(pg_mem)),
        "postgres_settings": {
            k: pg_settings[k]
            for k in ("shared_buffers", "work_mem", "max_parallel_workers_per_gather")
        },
        "postgres_over_model": round(pg_s / model_s, 1),
        "pandas_over_model": round(pandas_s / model_s, 1),
        "postgres_over_dbt_build": round(pg_s / dbt_s, 1),
        "pandas_over_dbt_build": round(pandas_s / dbt_s, 1),
        "postgres_over_chdb_direct": round(pg_s / direct_s, 1),
        "pandas_over_chdb_direct": round(pandas_s / direct_s, 1),
        "dbt_rss_over_pandas": round(dbt_mib / pandas_mib, 2),
        "chdb_direct_rss_over_pandas": round(direct_mib / pandas_mib, 2),
        "targets": "≥ 20× PostgreSQL, ≥ 4× pandas, memory ≤ ½ pandas",
        "mismatched_rows": mismatches,
        "postgres_plan": plan,
        "all_s": {
            "model": model_runs,
            "dbt": dbt_runs,
            "direct": direct_runs,
            "pandas": pandas_runs,
            "postgres": pg_runs,
        },
        "cpu_count": os.cpu_count(),
        "mem_total_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }
    if any(mismatches.values()):
        print(json.dumps(out), file=sys.stderr)
        raise SystemExit(f"the engines disagree: {mismatches}")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
