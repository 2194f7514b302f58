"""Replay recorded webhook requests (``webhooks/<provider>.jsonl``) against a receiver.

Input: one JSON object per line, ``{"method", "path", "headers", "body"}`` where ``body`` is
the raw body as a string (sent UTF-8 encoded, the bytes the signature covers) — the format
`ingestion/SOURCES.md` describes for the synthetic generator. Requests go out in file order
(the files deliberately hold duplicates and out-of-order arrivals), over keep-alive
connections; like a provider, a 5xx or a transport error is retried, a 4xx is not.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)


class _RetryableStatus(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


@dataclass
class ReplayResult:
    """How many requests were sent and what the receiver answered (status → count)."""

    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def accepted(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)


def read_requests(requests_file: Path) -> list[dict[str, Any]]:
    """The recorded requests; raises ValueError naming the file and line of a bad one."""
    requests: list[dict[str, Any]] = []
    with Path(requests_file).open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                request = json.loads(line)
                if not isinstance(request.get("body"), str) or not isinstance(
                    request.get("path"), str
                ):
                    raise ValueError("needs string fields 'path' and 'body'")
            except (ValueError, AttributeError) as exc:
                raise ValueError(
                    f"{requests_file}:{number}: not a recorded request: {exc}"
                ) from None
            requests.append(request)
    return requests


async def replay_async(
    requests_file: Path, base_url: str, *, concurrency: int = 1, attempts: int = 5
) -> ReplayResult:
    """Async `replay`; `concurrency` > 1 keeps that many requests in flight (order is then
    only approximately kept, as with a real provider)."""
    requests = read_requests(requests_file)
    result = ReplayResult()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) as client:

        async def send(request: dict[str, Any]) -> int:
            response = await client.request(
                request.get("method", "POST"),
                request["path"],
                headers=request.get("headers") or {},
                content=request["body"].encode("utf-8"),
            )
            if response.status_code >= 500:
                raise _RetryableStatus(response.status_code)
            return response.status_code

        async def worker() -> None:
            while not queue.empty():
                request = queue.get_nowait()
                try:
                    async for attempt in AsyncRetrying(
                        stop=stop_after_attempt(attempts),
                        wait=wait_exponential(multiplier=0.05, max=2.0),
                        retry=retry_if_exception_type((_RetryableStatus, httpx.TransportError)),
                        reraise=True,
                    ):
                        with attempt:
                            status = await send(request)
                except _RetryableStatus as exc:
                    status = exc.status
                result.sent += 1
                result.statuses[status] += 1

        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return result


def replay(
    requests_file: Path, base_url: str, *, concurrency: int = 1, attempts: int = 5
) -> ReplayResult:
    """POST every recorded request of `requests_file` to `base_url` (e.g.
    ``http://127.0.0.1:8780``); returns the counts by answer status."""
    return asyncio.run(
        replay_async(requests_file, base_url, concurrency=concurrency, attempts=attempts)
    )


@contextmanager
def receiver_process(env: dict[str, str] | None = None, cwd: Path | None = None) -> Iterator[str]:
    """`revisit.webhook_receiver` in its own process on an ephemeral loopback port: yields
    its base URL once it listens, stops it (SIGTERM) on exit."""
    receiver = subprocess.Popen(
        [sys.executable, "-m", "revisit.webhook_receiver", "--host", "127.0.0.1", "--port", "0"],
        env=env, cwd=cwd, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = receiver.stdout.readline() if receiver.stdout else ""
        if not line.startswith("LISTENING"):
            raise RuntimeError(f"the webhook receiver did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(timeout=30)
        if receiver.stdout:
            receiver.stdout.close()
