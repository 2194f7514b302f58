"""Delivery throughput (rate limits off), rate-limit accuracy (80 msg/s), and a provider
fault storm, on the stand-ins.

Each run: a fresh SQLite outbox in a temp dir, `--messages` planned messages (WhatsApp,
Telegram, SMS in turn), delivered by `activation.delivery.deliver` to the provider
stand-ins running in a child process (own interpreter and core). Measured: sent messages
per second of the whole run (sweep, claims, HTTP, batched commits). Then `--rate-messages`
WhatsApp messages with the provider limit at `--rate` msg/s: the rate measured at the
stand-in, (n − 1) / (last − first arrival), and its error against the configured rate.
Then the storm (`simulation.providers.storm`): `--storm-messages` messages and
`--storm-accruals` ledger accruals against stand-ins that time out after committing, reset
and drop connections, answer 5xx after the work, rate-limit with Retry-After, answer slowly;
delivery is rerun until every row is final.

Every phase checks exactly-once and no loss from the stand-ins' records (effects counted
per idempotency key, the ledger's own entry listing), not from the client's report; the
storm also checks Retry-After from the stand-ins' request logs. Prints one JSON line,
medians over `--runs`; exits 1 when a check failed.

    .venv/bin/python -m benchmarks.bench_delivery --messages 20000 --rate-messages 480 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from activation.contracts import Channel, PlannedAccrual, PlannedMessage, idempotency_key
from activation.delivery import deliver
from activation.outbox import Outbox
from simulation.providers import StandinCluster, run_standins_process
from simulation.providers.storm import audit, deliver_until_final, storm_config, storm_plan

CHANNELS = (Channel.whatsapp, Channel.telegram, Channel.sms)


def plans(n: int, channels: tuple[Channel, ...], tag: str) -> list[PlannedMessage]:
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        channel = channels[i % len(channels)]
        customer = f"c{i:08d}"
        phone = f"+7916{i % 10_000_000:07d}"
        out.append(
            PlannedMessage(
                idempotency_key=idempotency_key("bench", "B1", customer, tag),
                campaign_id=f"bench-{tag}", trigger="bench", business_id="B1",
                customer_id=customer, phone_e164=phone, channel=channel,
                recipient=str(10**6 + i) if channel is Channel.telegram else phone,
                template="bench_v1", variables={"name": "N"}, text="hello",
                send_at=now - timedelta(minutes=1), expires_at=now + timedelta(hours=1),
            )
        )  # fmt: skip
    return out


def _effects(cluster: StandinCluster, providers: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for provider in providers:
        for key, n in cluster.admin(provider).effects().items():
            out[key] = out.get(key, 0) + n
    return out


def delivery_check(
    cluster: StandinCluster, providers: tuple[str, ...], planned: list[str]
) -> dict[str, Any]:
    """Exactly-once and no-loss of `planned` keys, from the stand-ins' effect counts."""
    effects = _effects(cluster, providers)
    keys = set(planned)
    return {
        "keys": len(keys),
        "lost": sum(effects.get(k, 0) == 0 for k in keys),
        "duplicated": sum(effects.get(k, 0) > 1 for k in keys),
        "unplanned": sum(k not in keys for k in effects),
    }


def _once(check: dict[str, Any]) -> bool:
    return check["lost"] == check["duplicated"] == check["unplanned"] == 0


def run_throughput(
    cluster: StandinCluster, n: int, concurrency: int, tag: str
) -> tuple[float, dict[str, Any]]:
    cluster.reset()
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Outbox(f"sqlite:///{Path(tmp) / 'outbox.db'}")
        batch = plans(n, CHANNELS, tag)
        outbox.enqueue(batch)
        config = cluster.providers_config(concurrency=concurrency).without_rate_limits()
        report = deliver(outbox, config)
        outbox.dispose()
    check = delivery_check(cluster, ("whatsapp", "telegram", "sms"),
                           [p.idempotency_key for p in batch])  # fmt: skip
    check["sent"] = report.states["sent"]
    return report.sent_per_s, check


def run_rate(cluster: StandinCluster, n: int, rate: float, tag: str) -> dict[str, Any]:
    cluster.reset()
    batch = plans(n, (Channel.whatsapp,), tag)
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Outbox(f"sqlite:///{Path(tmp) / 'outbox.db'}")
        outbox.enqueue(batch)
        config = cluster.providers_config(whatsapp_rate_per_s=rate, concurrency=4)
        report = deliver(outbox, config)
        outbox.dispose()
    times = sorted(r["t"] for r in cluster.admin("whatsapp").requests())
    measured = (len(times) - 1) / (times[-1] - times[0])
    check = delivery_check(cluster, ("whatsapp",), [p.idempotency_key for p in batch])
    check["sent"] = report.states["sent"]
    return {
        "measured_per_s": measured,
        "run_per_s": report.sent_per_s,
        "error_pct": 100 * (measured - rate) / rate,
        "check": check,
    }


def run_storm(
    cluster: StandinCluster, n_messages: int, n_accruals: int, seed: int, concurrency: int
) -> dict[str, Any]:
    """One fault storm: faults on, deliver until final, audit from the stand-ins."""
    cluster.reset()
    for provider, faults in storm_plan(seed).items():
        cluster.admin(provider).set_faults(**faults)
    batch = [*plans(n_messages, CHANNELS, f"s{seed}"), *accruals(n_accruals, f"s{seed}")]
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Outbox(f"sqlite:///{Path(tmp) / 'outbox.db'}")
        outbox.enqueue(batch)
        started = time.perf_counter()
        reports = deliver_until_final(outbox, storm_config(cluster, concurrency=concurrency),
                                      cluster)  # fmt: skip
        elapsed = time.perf_counter() - started
        result = audit(cluster, outbox, batch)
        outbox.dispose()
    cluster.reset()
    limits = result["retry_after"].values()
    return {
        "seed": seed,
        "messages": n_messages,
        "accruals": n_accruals,
        "delivery_runs": len(reports),
        "elapsed_s": round(elapsed, 2),
        "requests": result["requests"],
        # Requests beyond one per planned row: in-run retries and later runs' resends.
        "retries": result["requests"] - len(batch),
        "ambiguous_outcomes": result["ambiguous_outcomes"],
        "client_ambiguous_outcomes": sum(r.ambiguous_outcomes for r in reports),
        "faults": result["faults"],
        "double_accruals": result["double_accruals"],
        "accruals_missing": result["accruals_missing"],
        "accruals_exactly_once": result["accruals_exactly_once"],
        "sms_not_once": result["sms_not_once"],
        "whatsapp_not_once": result["whatsapp_not_once"],
        "telegram": result["telegram"],
        "lost": result["lost"],
        "unfinished": result["unfinished"],
        "responses_429": sum(a["responses_429"] for a in limits),
        "responses_429_unread": sum(a["unconfirmed"] for a in limits),
        "retry_after_violations": result["retry_after_violations"],
        "min_retry_after_follow_up_s": min(
            (a["min_follow_up_gap_s"] for a in limits if a["min_follow_up_gap_s"] is not None),
            default=None,
        ),
        "ok": result["ok"],
    }


def accruals(n: int, tag: str) -> list[PlannedAccrual]:
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        customer = f"c{i:08d}"
        source = f"P1:{tag}:ev{i:08d}"
        out.append(
            PlannedAccrual(
                idempotency_key=idempotency_key("accrual", "P1", customer, f"accrual:{source}"),
                campaign_id=f"bench-accrual-{tag}", business_id="P1", customer_id=customer,
                phone_e164=f"+7916{i % 10_000_000:07d}", amount=Decimal("10.50"),
                currency="RUB", source_event_id=source, created_at=now - timedelta(minutes=1),
            )
        )  # fmt: skip
    return out


def _mem_total_gb() -> float:
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return round(pages / 2**30, 1)
    except (ValueError, OSError):  # pragma: no cover
        return 0.0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rate-messages", type=int, default=800)
    parser.add_argument("--rate", type=float, default=80.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--storm-messages", type=int, default=3000)
    parser.add_argument("--storm-accruals", type=int, default=4000)
    parser.add_argument("--storm-seed", type=int, default=1)
    args = parser.parse_args(argv)

    throughput, checks, rates, storm = [], [], [], None
    with run_standins_process(("whatsapp", "telegram", "sms", "ledger")) as cluster:
        for run in range(args.runs):
            per_s, check = run_throughput(cluster, args.messages, args.concurrency, f"t{run}")
            throughput.append(per_s)
            checks.append(check)
            rates.append(run_rate(cluster, args.rate_messages, args.rate, f"r{run}"))
        if args.storm_messages or args.storm_accruals:
            storm = run_storm(cluster, args.storm_messages, args.storm_accruals,
                              args.storm_seed, args.concurrency)  # fmt: skip
    rate_checks = [r["check"] for r in rates]
    result = {
        "benchmark": "delivery",
        "messages": args.messages,
        "runs": args.runs,
        "concurrency": args.concurrency,
        "unlimited_msgs_per_s_median": round(statistics.median(throughput), 1),
        "unlimited_msgs_per_s_runs": [round(x, 1) for x in throughput],
        "unlimited_exactly_once": all(map(_once, checks)),
        "unlimited_lost": sum(c["lost"] for c in checks),
        "unlimited_duplicated": sum(c["duplicated"] for c in checks),
        "rate_configured_per_s": args.rate,
        "rate_messages": args.rate_messages,
        "rate_measured_per_s_median": round(
            statistics.median(r["measured_per_s"] for r in rates), 2
        ),
        "rate_error_pct_median": round(statistics.median(r["error_pct"] for r in rates), 2),
        "rate_run_per_s_median": round(statistics.median(r["run_per_s"] for r in rates), 2),
        "rate_exactly_once": all(map(_once, rate_checks)),
        "rate_lost": sum(c["lost"] for c in rate_checks),
        "rate_duplicated": sum(c["duplicated"] for c in rate_checks),
        # The storm's headline (all of it under "storm"): effects counted at the stand-ins.
        **(
            {
                "storm_s": storm["elapsed_s"],
                "storm_ambiguous_outcomes": storm["ambiguous_outcomes"],
                "storm_double_accruals": storm["double_accruals"],
                "storm_lost": storm["lost"],
                "storm_retries": storm["retries"],
                "storm_responses_429": storm["responses_429"],
                "storm_retry_after_violations": storm["retry_after_violations"],
            }
            if storm
            else {}
        ),
        "storm": storm,
        "exactly_once": all(map(_once, checks + rate_checks)) and (storm is None or storm["ok"]),
        "cpu_count": os.cpu_count(),
        "mem_total_gb": _mem_total_gb(),
        "python": sys.version.split()[0],
    }
    print(json.dumps(result))
    if not result["exactly_once"]:
        raise SystemExit(1)
    return result


if __name__ == "__main__":
    main()
