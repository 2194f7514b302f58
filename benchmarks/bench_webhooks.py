"""Webhook receiver throughput and latency with durable (fsynced) spooling.

Each run starts the receiver (`python -m revisit.webhook_receiver`, `--workers` uvicorn worker
processes on one socket, 2 by default: one per core) in a subprocess on 127.0.0.1 with an
ephemeral port and a fresh data directory,
then drives it from this process with a small HTTP/1.1 load generator (uvloop, `--connections`
keep-alive sockets, one request in flight per socket) posting `--requests` distinct signed
WhatsApp status notifications, stopping early at `--duration` seconds. Load generator and
receiver share the machine's cores.

Measured per run: accepted (200) requests per second, p50/p99 latency of accepted requests
(send → full answer), the spool's average group-commit size; after a clean stop, every
accepted body must be found in the closed spool segments. Baseline in the same run: the
same requests with a forged signature (403 — HMAC check, no spooling), i.e. the cost of the
HTTP stack without the durable write. Prints one JSON line with medians over `--runs`.

    .venv/bin/python -m benchmarks.bench_webhooks --requests 20000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import uvloop

from ingestion.messenger.spool import CLOSED_SUFFIX, OPEN_SUFFIX, SpoolRecord, read_segment

SECRET = "bench-whatsapp-app-secret"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def make_bodies(n: int) -> list[bytes]:
    """`n` distinct WhatsApp status notifications (Cloud API shape)."""
    bodies = []
    for i in range(n):
        notification = {
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881",
                             "phone_number_id": "106540352242922"},
                "statuses": [{
                    "id": f"wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA{i:010d}",
                    "status": ("sent", "delivered", "read")[i % 3],
                    "timestamp": str(1735732800 + i),
                    "recipient_id": f"7916{i % 10_000_000:07d}",
                    "biz_opaque_callback_data": f"msg-{i:010d}",
                    "conversation": {"id": "CONVERSATION_ID", "origin": {"type": "marketing"}},
                    "pricing": {"billable": True, "pricing_model": "CBP", "category": "marketing"},
                }],
            }}]}],
        }  # fmt: skip
        bodies.append(json.dumps(notification, separators=(",", ":")).encode())
    return bodies


def make_request(body: bytes, *, forged: bool = False) -> bytes:
    key = b"not-the-secret" if forged else SECRET.encode()
    signature = hmac.new(key, body, hashlib.sha256).hexdigest()
    return (
        b"POST /webhooks/whatsapp HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nX-Hub-Signature-256: sha256=%s\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (signature.encode(), len(body), body)
    )


@dataclass
class LoadResult:
    statuses: dict[int, int] = field(default_factory=dict)
    accepted: list[int] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending the next request as soon as an answer is complete."""

    def __init__(self, load: _Load) -> None:
        self.load = load
        self.buffer = b""
        self.index = -1
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send_next(self) -> None:
        index = self.load.take()
        if index is None:
            assert self.transport is not None
            self.transport.close()
            if not self.done.done():
                self.done.set_result(None)
            return
        self.index = index
        self.sent_at = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self.load.requests[index])

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            line_end = head.find(b"\r\n", at)
            length = int(head[at + 15 : line_end if line_end >= 0 else len(head)])
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            status = int(self.buffer[9:12])
            self.buffer = self.buffer[total:]
            self.load.record(self.index, status, time.perf_counter() - self.sent_at)
            self.send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if self.index >= 0 and self.load.pending(self.index):
                self.done.set_exception(ConnectionError(f"connection lost: {exc}"))
            else:
                self.done.set_result(None)


class _Load:
    def __init__(self, requests: list[bytes], duration_s: float) -> None:
        self.requests = requests
        self.next = 0
        self.deadline = 0.0
        self.duration_s = duration_s
        self.result = LoadResult()
        self._answered: set[int] = set()

    def take(self) -> int | None:
        if self.next >= len(self.requests) or time.perf_counter() > self.deadline:
            return None
        self.next += 1
        return self.next - 1

    def pending(self, index: int) -> bool:
        return index not in self._answered

    def record(self, index: int, status: int, seconds: float) -> None:
        self._answered.add(index)
        self.result.statuses[status] = self.result.statuses.get(status, 0) + 1
        if status == 200:
            self.result.accepted.append(index)
            self.result.latencies_ms.append(seconds * 1000.0)


async def drive(
    port: int, requests: list[bytes], connections: int, duration_s: float
) -> LoadResult:
    """Send `requests` over `connections` sockets to 127.0.0.1:`port`; bounded by duration."""
    loop = asyncio.get_running_loop()
    load = _Load(requests, duration_s)
    protocols = []
    for _ in range(connections):
        _, protocol = await loop.create_connection(lambda: _Connection(load), "127.0.0.1", port)
        protocols.append(protocol)
    started = time.perf_counter()
    load.deadline = started + duration_s
    for protocol in protocols:
        protocol.send_next()
    await asyncio.gather(*(p.done for p in protocols))
    load.result.elapsed_s = time.perf_counter() - started
    return load.result


def _health(port: int) -> dict:
    import httpx

    return httpx.get(f"http://127.0.0.1:{port}/webhooks/health", timeout=5).json()


def _health_of_workers(port: int, workers: int, attempts: int = 200) -> list[dict]:
    """The health of every worker: each new connection lands on a worker the kernel picks,
    so ask until every pid has answered (or `attempts` ran out)."""
    by_pid: dict[int, dict] = {}
    for _ in range(attempts):
        health = _health(port)
        by_pid[health["pid"]] = health
        if len(by_pid) == workers:
            break
    return list(by_pid.values())


class Receiver:
    """The receiver in a subprocess with its own data directory."""

    def __init__(self, data_dir: Path, workers: int) -> None:
        env = {
            **os.environ,
            "REVISIT_DATA_DIR": str(data_dir),
            "REVISIT_WHATSAPP_APP_SECRET": SECRET,
        }
        self.spool_root = data_dir / "spool" / "webhooks"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "revisit.webhook_receiver", "--host", "127.0.0.1", "--port", "0",
             "--workers", str(workers)],
            cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("LISTENING "):
            self.process.kill()
            raise RuntimeError(f"receiver did not start: {line!r}")
        self.port = int(line.split()[1])
        deadline = time.monotonic() + 30
        while True:  # every worker up, its spool started
            try:
                healths = _health_of_workers(self.port, workers, attempts=20)
                if len(healths) == workers and all(h["status"] == "ok" for h in healths):
                    break
            except Exception:
                if time.monotonic() > deadline:
                    self.process.kill()
                    raise
            if time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"receiver workers did not all start: {healths}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def spooled_bodies(self) -> tuple[set[bytes], int]:
        """(bodies in closed segments, number of open segments left behind)."""
        bodies = set()
        for path in self.spool_root.glob(f"*{CLOSED_SUFFIX}"):
            for item in read_segment(path):
                if isinstance(item, SpoolRecord):
                    bodies.add(item.body)
        return bodies, len(list(self.spool_root.glob(f"*{OPEN_SUFFIX}")))


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def one_run(
    bodies: list[bytes], requests: list[bytes], forged: list[bytes], args: argparse.Namespace
) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        receiver = Receiver(Path(tmp), args.workers)
        try:
            result = uvloop.run(drive(receiver.port, requests, args.connections, args.duration))
            healths = _health_of_workers(receiver.port, args.workers)
            baseline = uvloop.run(drive(receiver.port, forged, args.connections, args.duration))
        finally:
            receiver.stop()
        spooled, left_open = receiver.spooled_bodies()
    missing = sum(1 for i in result.accepted if bodies[i] not in spooled)
    baseline_answered = sum(baseline.statuses.values())
    batches = sum(h["spool_batches"] for h in healths)
    records = sum(h["spool_records"] for h in healths)
    return {
        "sent": sum(result.statuses.values()),
        "accepted": len(result.accepted),
        "statuses": result.statuses,
        "elapsed_s": round(result.elapsed_s, 3),
        "accepted_per_s": len(result.accepted) / result.elapsed_s,
        "p50_ms": _percentile(result.latencies_ms, 50),
        "p99_ms": _percentile(result.latencies_ms, 99),
        "avg_group_commit": records / batches if batches and len(healths) == args.workers else None,
        "accepted_missing_from_spool": missing,
        "open_segments_after_stop": left_open,
        "baseline_reject_per_s": baseline_answered / baseline.elapsed_s,
    }


def _memory_total_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=60.0, help="cap per load phase (s)")
    parser.add_argument("--connections", type=int, default=64)
    # Two receiver processes: one per core. The load generator's share is small (a lean
    # client), and one process leaves a core idle whenever it waits on the group commit.
    parser.add_argument("--workers", type=int, default=2, help="receiver processes")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)

    bodies = make_bodies(args.requests)
    requests = [make_request(b) for b in bodies]
    forged = [make_request(b, forged=True) for b in bodies]
    runs = [one_run(bodies, requests, forged, args) for _ in range(args.runs)]

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 3)

    summary = {
        "benchmark": "webhooks",
        "cpu_count": os.cpu_count(),
        "memory_total_bytes": _memory_total_bytes(),
        "requests": args.requests,
        "connections": args.connections,
        "workers": args.workers,
        "runs": args.runs,
        "accepted_per_s": median("accepted_per_s"),
        "p50_ms": median("p50_ms"),
        "p99_ms": median("p99_ms"),
        "baseline_reject_per_s": median("baseline_reject_per_s"),
        "ratio_to_baseline": round(median("accepted_per_s") / median("baseline_reject_per_s"), 3),
        "all_accepted_spooled": all(r["accepted_missing_from_spool"] == 0 for r in runs),
        "targets_met": median("accepted_per_s") >= 5000 and median("p99_ms") < 50,
        "per_run": [
            {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in runs
        ],
    }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
