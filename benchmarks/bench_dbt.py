"""`dbt build` of every model on a 1M-customer ecosystem, on the embedded engine.

The raw tables are filled inside ClickHouse (`numbers()`) at the shape and volume of
the synthetic ecosystem — about 1.12 CRM records and 20 appointments per person, 6
trigger sends per person, status events for the last month, partner events — so the
benchmark measures dbt, not ingestion. Each run is a `dbt build --full-refresh` (models,
seeds, data and unit tests); the report gives the median total and the five slowest
models of the median run (from dbt's run_results.json).

    .venv/bin/python -m benchmarks.bench_dbt --customers 1000000 --runs 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import warehouse
from revisit.settings import Settings
from warehouse.dbt_runner import run_dbt, run_target_path
from warehouse.load import prepare_raw

AS_OF = "2026-11-01"
HISTORY = "toDateTime64('2025-05-10 00:00:00', 3, 'UTC')"

FILL = [
    """INSERT INTO raw.crm_businesses SELECT
        'B' || leftPad(toString(number), 6, '0'), 'Business ' || toString(number),
        ['salon','barbershop','clinic','restaurant','grooming','hookah'][number % 6 + 1],
        if(number % 5 = 0, 'KZ', 'RU'), 'City', if(number % 5 = 0, 'Asia/Almaty',
        'Europe/Moscow'), if(number % 5 = 0, 'KZT', 'RUB'), now64(3, 'UTC'),
        'bench', 'bench', number, now64(3, 'UTC'), 1
      FROM numbers({businesses})""",
    """INSERT INTO raw.crm_customers SELECT
        'B' || leftPad(toString(person % {businesses}), 6, '0') AS business_id,
        'C' || toString(number), {customer_id}, phone, phone,
        'Имя ' || toString(person), toDate32('1970-01-01') + (cityHash64(person) % 18000),
        if(person % 2 = 0, 'f', 'm'), person % 5 != 0, {history}, {history}, false,
        'bench', 'bench', number, now64(3, 'UTC'), 1
      FROM (SELECT number, if(number < {people}, number, cityHash64(number) % {people})
            AS person, '+79' || leftPad(toString(person), 9, '0') AS phone
            FROM numbers({records}))""",
    """INSERT INTO raw.crm_appointments SELECT
        'B' || leftPad(toString(person % {businesses}), 6, '0'), 'A' || toString(number),
        'C' || toString(person), 'L1', 'S' || toString(number % 20),
        if(at > toDateTime64('{as_of} 00:00:00', 3, 'UTC'), 'scheduled',
           ['completed','completed','completed','completed','completed','completed',
            'cancelled','no_show'][number % 8 + 1]) AS status,
        at, if(status = 'completed', toDecimal64(500 + number % 4500, 2), NULL), 'RUB',
        if(number % 97 = 0, 'O' || toString(number % 50), NULL), at - INTERVAL 3 DAY, at,
        false, 'bench', 'bench', number, now64(3, 'UTC'), 1
      FROM (SELECT number, cityHash64(number, 'p') % {people} AS person,
            {history} + toIntervalSecond(cityHash64(number, 't') % (570 * 86400)) AS at
            FROM numbers({appointments}))""",
    """INSERT INTO raw.message_sends SELECT
        'M' || toString(number), 'B' || leftPad(toString(person % {businesses}), 6, '0'),
        '+79' || leftPad(toString(person), 9, '0') AS phone,
        {customer_id},
        ['birthday','reminder','winback','partner_offer','personal_offer'][number % 5 + 1],
        'campaign-' || toString(number % 400), ['whatsapp','telegram','sms'][number % 3 + 1],
        number % 10 = 0, {history} + toIntervalSecond(cityHash64(number) % (540 * 86400)),
        if(number % 5 = 3, 'O' || toString(number % 50), NULL),
        if(number % 10 = 0, NULL, 'wamid.' || toString(number)),
        'bench', 'bench', number, now64(3, 'UTC'), 1
      FROM (SELECT number, cityHash64(number, 's') % {people} AS person
            FROM numbers({sends}))""",
    """INSERT INTO raw.messenger_events SELECT
        'whatsapp', toString(number) || ':' || status, 'status', 'wamid.' || toString(m),
        'M' || toString(m), ['sent','delivered','read'][number % 3 + 1] AS status,
        '+79' || leftPad(toString(m % {people}), 9, '0'), NULL, NULL,
        toDateTime64('{as_of} 00:00:00', 3, 'UTC') - toIntervalSecond(number % 2592000),
        now64(3, 'UTC'), '{{}}', 'bench', 'bench', number, now64(3, 'UTC'), 1
      FROM (SELECT number, intDiv(number, 3) * 7 + 1 AS m FROM numbers({events}))""",
    """INSERT INTO raw.partner_offers SELECT
        'O' || toString(number), 'B' || leftPad(toString(number), 6, '0'), 'Offer',
        ['B' || leftPad(toString(number + 1), 6, '0'), 'B' || leftPad(toString(number + 2),
        6, '0')], toDecimal64(500, 2), toDecimal32(10, 4), toDecimal32(5, 4), 'RUB', 1000,
        18, 45, NULL, toDate('2025-06-01'), toDate('2026-12-31'),
        'bench', 'bench', number, now64(3, 'UTC'), 1
      FROM numbers(50)""",
    """INSERT INTO raw.partner_events SELECT
        toString(number), 'p' || toString(number % 3 + 1),
        ['target_action','accrual','accrual','reversal','redemption'][number % 5 + 1],
        '+79' || leftPad(toString(person), 9, '0') AS phone,
        {customer_id}, toDecimal64(10 + number % 990, 2),
        'RUB', {history} + toIntervalSecond(cityHash64(number) % (540 * 86400)),
        if(number % 4 = 0, 'O' || toString(number % 50), NULL), '{{}}',
        'bench', 'bench', number, now64(3, 'UTC'), 1
      FROM (SELECT number, cityHash64(number, 'e') % {people} AS person
            FROM numbers({partner_events}))""",
]


def customer_id_sql(settings: Settings) -> str:
    """`ingestion.identity.customer_id` in SQL: the installation's keyed HMAC of `phone`."""
    key = settings.id_key.decode().replace("\\", "\\\\").replace("'", "\\'")
    return f"substring(lower(hex(HMAC('SHA256', phone, '{key}'))), 1, 16)"


def fill(settings: Settings, customers: int) -> dict[str, int]:
    sizes = {
        "people": customers,
        "businesses": max(6, customers // 400),
        "records": int(customers * 1.12),
        "appointments": customers * 20,
        "sends": customers * 6,
        "events": customers * 2,
        "partner_events": customers // 2,
    }
    with warehouse.connect(settings.warehouse_dsn) as client:
        prepare_raw(client)
        for statement in FILL:
            client.command(
                statement.format(
                    as_of=AS_OF, history=HISTORY, customer_id=customer_id_sql(settings), **sizes
                )
            )
    return sizes


def build(settings: Settings) -> tuple[float, list[tuple[str, float]], list[str]]:
    """One full build: total seconds, the five slowest models, the nodes that failed."""
    started = time.perf_counter()
    with contextlib.suppress(subprocess.CalledProcessError):  # failures are reported below
        run_dbt(
            ["build", "--full-refresh", "--vars", json.dumps({"as_of_date": AS_OF}), "--quiet"],
            settings.dbt(),
            capture=True,
        )
    total = time.perf_counter() - started
    results = json.loads((run_target_path(settings.dbt()) / "run_results.json").read_text())[
        "results"
    ]
    models = [
        (r["unique_id"].split(".")[-1], round(r["execution_time"], 2))
        for r in results
        if r["unique_id"].startswith("model.")
    ]
    failed = [
        f"{r['unique_id'].split('.')[-1]}: {r['status']} {(r.get('message') or '')[:200]}"
        for r in results
        if r["status"] not in ("success", "pass", "no-op")  # exposures report no-op
    ]
    return total, sorted(models, key=lambda m: -m[1])[:5], failed


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-dbt-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        started = time.perf_counter()
        sizes = fill(settings, options.customers)
        fill_s = time.perf_counter() - started
        runs = [build(settings) for _ in range(options.runs)]
    totals = [total for total, _, _ in runs]
    median_run = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    result = {
        "bench": "dbt_build",
        "customers": options.customers,
        "appointments": sizes["appointments"],
        "runs": options.runs,
        "fill_s": round(fill_s, 1),
        "median_s": round(statistics.median(totals), 1),
        "all_s": [round(t, 1) for t in totals],
        "target_s": 90,
        "slowest_models": median_run[1],
        "failed_nodes": median_run[2],
        "cpu_count": os.cpu_count(),
        "mem_total_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
