"""Planner: seconds to plan every shipped trigger for an N-customer audience (target ≤ 20 s
for 1M on 2 cores).

Input is generated inside a temporary embedded warehouse with ClickHouse `numbers()`:
N customers over 200 businesses in 5 time zones (birthdays, consent, opt-outs, Telegram
chats for 20%), an RFM row and a revisit score per customer, 3% with an appointment in
the next two days, 2 sends of history per customer on average, 20 partner offers and a
cashback ledger for 10%. The segment offer covers every segment, so the whole base is
the audience. Timed: `plan()` end to end (candidate SQL, decisions, the write to
activation.send_plan, reading the planned rows back as a DataFrame). Baseline in the same
run: a plain `count()` join of dim_customers × customer_rfm (what any plan must read).

    .venv/bin/python -m benchmarks.bench_planner --customers 1000000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime

import warehouse
from activation.activation_log import ensure_log_tables
from activation.planner import plan
from activation.trigger_specs import SEGMENTS, load_triggers
from ml.contract import ensure_scores_table
from warehouse import contracts

NOW = datetime(2026, 3, 28, 20, 0, tzinfo=UTC)  # eve of the Berlin DST change
ZONES = ["Europe/Berlin", "Europe/Moscow", "Asia/Almaty", "America/New_York", "Asia/Dubai"]


def create_inputs(client: warehouse.Client) -> None:
    """The planner's inputs, empty: the marts of its dbt exposure (from their contracts),
    the ML scores and the activation log (from their owners)."""
    contracts.create_tables(client, contracts.exposure_tables("activation_planner"))
    ensure_scores_table(client)
    ensure_log_tables(client)


def generate(client: warehouse.Client, n: int) -> None:
    create_inputs(client)
    zones = "[" + ", ".join(f"'{z}'" for z in ZONES) + "]"
    segs = "[" + ", ".join(f"'{s}'" for s in SEGMENTS) + "]"
    client.command(f"""
        INSERT INTO marts.dim_customers
        SELECT 'B' || toString(number % 200) AS business_id, 'c' || toString(number),
            '+7999' || leftPad(toString(number), 7, '0'), 'Имя Фамилия',
            if(number % 7 = 0, NULL, toDate32('1970-01-01') + toInt32(cityHash64(number) % 15000)),
            if(number % 2 = 0, 'f', 'm'), 'salon', {zones}[(number % 200) % 5 + 1], 'RUB',
            number % 10 != 0, number % 33 = 0,
            if(number % 33 = 0, toDateTime64('2026-01-01 00:00:00', 3, 'UTC'), NULL),
            number % 10 != 0 AND number % 33 != 0,
            toDateTime64('2024-01-01 00:00:00', 3, 'UTC'), NULL,
            toDateTime64('2026-01-01 00:00:00', 3, 'UTC') + toIntervalHour(number % 1500),
            number % 20, toDecimal128(number % 5000, 2), NULL
        FROM numbers({n})""")
    client.command(f"""
        INSERT INTO marts.customer_rfm
        SELECT 'B' || toString(number % 200), 'c' || toString(number), toDate('2026-03-28'),
            toDateTime64('2026-01-01 00:00:00', 3, 'UTC'), toUInt32(number % 300),
            toUInt32(number % 9), toDecimal128(number % 900, 2), 1, 2, 3, 'R1F2M3',
            {segs}[cityHash64(number, 1) % {len(SEGMENTS)} + 1]
        FROM numbers({n})""")
    client.command(f"""
        INSERT INTO ml.revisit_scores (business_id, customer_id, scored_at, model_version,
            p_revisit, decile, reason_codes)
        SELECT 'B' || toString(number % 200), 'c' || toString(number),
            toDateTime64('2026-03-27 00:00:00', 3, 'UTC'), 'v1',
            (cityHash64(number, 2) % 1000) / 1000, 5, []
        FROM numbers({n})""")
    client.command(f"""
        INSERT INTO marts.fct_appointments
        SELECT 'k' || toString(number), 'B' || toString(number % 200), 'a' || toString(number),
            'c' || toString(number), 'L', 'S', 'scheduled',
            toDateTime64('2026-03-28 20:00:00', 3, 'UTC') + toIntervalMinute(number % 2880),
            NULL, 'RUB', NULL, toDateTime64('2026-03-01 00:00:00', 3, 'UTC'),
            toDateTime64('2026-03-01 00:00:00', 3, 'UTC')
        FROM numbers({n}) WHERE number % 33 = 1""")
    client.command(f"""
        INSERT INTO marts.fct_message_sends (message_id, business_id, customer_id,
            phone_e164, trigger, channel, holdout, planned_at, sent_at)
        SELECT 'm' || toString(number), 'B' || toString(cityHash64(number) % {n} % 200),
            'c' || toString(cityHash64(number) % {n}), '', 'segment_offer', 'whatsapp', false,
            toDateTime64('2026-03-28 20:00:00', 3, 'UTC') - toIntervalMinute(number % 43200),
            toDateTime64('2026-03-28 20:00:00', 3, 'UTC') - toIntervalMinute(number % 43200)
        FROM numbers({2 * n})""")
    client.command(f"""
        INSERT INTO marts.fct_message_sends (message_id, business_id, customer_id,
            phone_e164, trigger, channel, holdout, planned_at, provider_message_id)
        SELECT 't' || toString(number), 'B' || toString(number % 200), 'c' || toString(number),
            '+7999' || leftPad(toString(number), 7, '0'), 'x', 'telegram', false,
            toDateTime64('2026-01-01 00:00:00', 3, 'UTC'), toString(number + 1000) || ':1'
        FROM numbers({n}) WHERE number % 5 = 0""")
    client.command("""
        INSERT INTO marts.dim_partner_offers
        SELECT 'O' || toString(number), 'B' || toString(number), 'Offer',
            ['B' || toString((number + 1) % 200), 'B' || toString((number + 2) % 200)],
            300, 15, 5, 'RUB', if(number % 2 = 0, NULL, toUInt32(1000)),
            if(number % 3 = 0, 25, NULL), if(number % 3 = 0, 45, NULL),
            if(number % 4 = 0, 'f', NULL), toDate('2026-03-01'), toDate('2026-04-30')
        FROM numbers(20)""")
    client.command(f"""
        INSERT INTO marts.cashback_ledger
        SELECT 'p1:' || toString(number), 'p1', toString(number),
            if(number % 4 = 3, 'redemption', 'accrual'), 'c' || toString(number % {n // 10 + 1}),
            '', if(number % 4 = 3, -50, 200 + number % 300), 'RUB',
            toDateTime64('2026-03-28 00:00:00', 3, 'UTC') - toIntervalHour(number % 4400),
            NULL, toDateTime64('2026-03-28 00:00:00', 3, 'UTC')
        FROM numbers({n // 2})""")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    specs = []
    for spec in load_triggers():
        if spec.kind == "segment_offer":  # the whole base is the audience
            offers = {s: f"offer for {s}" for s in SEGMENTS}
            spec = spec.model_copy(
                update={"params": spec.params.model_copy(update={"offers": offers})}
            )
        specs.append(spec)
    with tempfile.TemporaryDirectory() as tmp, warehouse.connect(f"chdb://{tmp}") as client:
        start = time.perf_counter()
        generate(client, args.customers)
        generate_s = time.perf_counter() - start
        start = time.perf_counter()
        client.query(
            "SELECT count() FROM marts.dim_customers AS d INNER JOIN marts.customer_rfm AS r "
            "ON d.business_id = r.business_id AND d.customer_id = r.customer_id"
        )
        baseline = time.perf_counter() - start
        timings, last = [], None
        for _ in range(args.runs):
            start = time.perf_counter()
            last = plan(client, specs, now=NOW)
            timings.append(time.perf_counter() - start)
        assert last is not None
        counts = last.counts.groupby("decision")["n"].sum().to_dict()
    median = statistics.median(timings)
    result = {
        "bench": "planner",
        "customers": args.customers,
        "runs": args.runs,
        "median_s": round(median, 3),
        "runs_s": [round(t, 3) for t in timings],
        "target_s_for_1m": 20,
        "candidates": int(sum(counts.values())),
        "decisions": {k: int(v) for k, v in counts.items()},
        "baseline_join_count_s": round(baseline, 3),
        "generate_s": round(generate_s, 2),
        "cpu_count": os.cpu_count(),
        "mem_total_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
