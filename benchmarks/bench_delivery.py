"""Delivery throughput (rate limits off) and rate-limit accuracy (80 msg/s) on the stand-ins.

Each run: a fresh SQLite outbox in a temp dir, `--messages` planned messages (WhatsApp,
Telegram, SMS in turn), delivered by `activation.delivery.deliver` to the provider
stand-ins running in a child process (own interpreter and core). Measured: sent messages
per second of the whole run (sweep, claims, HTTP, batched commits), and that every key had
exactly one effect at the stand-ins. Then `--rate-messages` WhatsApp messages with the
provider limit at `--rate` msg/s: the rate measured at the stand-in, (n − 1) / (last − first
arrival), and its error against the configured rate. Prints one JSON line, medians over
`--runs`.

    .venv/bin/python -m benchmarks.bench_delivery --messages 20000 --rate-messages 480 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from activation.contracts import Channel, PlannedMessage, idempotency_key
from activation.delivery import deliver
from activation.outbox import Outbox
from simulation.providers import StandinCluster, run_standins_process

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


def run_throughput(cluster: StandinCluster, n: int, concurrency: int, tag: str) -> float:
    cluster.reset()
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Outbox(f"sqlite:///{Path(tmp) / 'outbox.db'}")
        batch = plans(n, CHANNELS, tag)
        outbox.enqueue(batch)
        config = cluster.providers_config(concurrency=concurrency).without_rate_limits()
        report = deliver(outbox, config)
        outbox.dispose()
    effects = _effects(cluster, ("whatsapp", "telegram", "sms"))
    if report.states["sent"] != n or effects != {p.idempotency_key: 1 for p in batch}:
        raise SystemExit(f"exactly-once violated or messages lost: {report.as_dict()}")
    return report.sent_per_s


def run_rate(cluster: StandinCluster, n: int, rate: float, tag: str) -> dict[str, float]:
    cluster.reset()
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Outbox(f"sqlite:///{Path(tmp) / 'outbox.db'}")
        outbox.enqueue(plans(n, (Channel.whatsapp,), tag))
        config = cluster.providers_config(whatsapp_rate_per_s=rate, concurrency=4)
        report = deliver(outbox, config)
        outbox.dispose()
    times = sorted(r["t"] for r in cluster.admin("whatsapp").requests())
    measured = (len(times) - 1) / (times[-1] - times[0])
    return {
        "measured_per_s": measured,
        "run_per_s": report.sent_per_s,
        "error_pct": 100 * (measured - rate) / rate,
    }


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
    args = parser.parse_args(argv)

    throughput, rates = [], []
    with run_standins_process(("whatsapp", "telegram", "sms")) as cluster:
        for run in range(args.runs):
            throughput.append(run_throughput(cluster, args.messages, args.concurrency, f"t{run}"))
            rates.append(run_rate(cluster, args.rate_messages, args.rate, f"r{run}"))
    result = {
        "benchmark": "delivery",
        "messages": args.messages,
        "runs": args.runs,
        "concurrency": args.concurrency,
        "unlimited_msgs_per_s_median": round(statistics.median(throughput), 1),
        "unlimited_msgs_per_s_runs": [round(x, 1) for x in throughput],
        "rate_configured_per_s": args.rate,
        "rate_messages": args.rate_messages,
        "rate_measured_per_s_median": round(
            statistics.median(r["measured_per_s"] for r in rates), 2
        ),
        "rate_error_pct_median": round(statistics.median(r["error_pct"] for r in rates), 2),
        "rate_run_per_s_median": round(statistics.median(r["run_per_s"] for r in rates), 2),
        "exactly_once": True,
        "cpu_count": os.cpu_count(),
        "mem_total_gb": _mem_total_gb(),
        "python": sys.version.split()[0],
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
