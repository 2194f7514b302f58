"""Stand-in CRM: serves `<src>/crm/api/<entity>.jsonl` through the SOURCES.md contract.

`GET /api/v1/<entity>?updated_since=&cursor=&limit=` with `Authorization: Bearer <token>`
→ `{"data": [...], "next_cursor": ...}`, records ordered by (updated_at, id), every
version of a record served (a later line with the same id is an update).
`updated_since` is inclusive. The cursor is opaque (base64 of the last (updated_at, id)).

Fault injection for tests: `Faults(script=["429", "503", "slow", ...])` makes the next
requests answer 429 (with Retry-After), a 5xx, or sleep `slow_s` first, in that order.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

MAX_LIMIT = 5000


@dataclass
class Faults:
    """Scripted failures, consumed one per request: "429", "500"/"502"/"503", "slow"."""

    script: list[str] = field(default_factory=list)
    retry_after_s: float = 0.05
    slow_s: float = 2.0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> str | None:
        with self.lock:
            self.requests += 1
            return self.script.pop(0) if self.script else None


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _load(src_dir: Path) -> dict[str, list[tuple[datetime, str, dict[str, Any]]]]:
    entities = {}
    for path in sorted((src_dir / "crm" / "api").glob("*.jsonl")):
        rows = []
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    rec = json.loads(line)
                    rows.append((_ts(rec["updated_at"]), str(rec["id"]), rec))
        rows.sort(key=lambda r: (r[0], r[1]))
        entities[path.stem] = rows
    return entities


def _encode(stamp: datetime, rec_id: str, seq: int) -> str:
    raw = json.dumps([stamp.isoformat(), rec_id, seq]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode(cursor: str) -> tuple[datetime, str, int]:
    stamp, rec_id, seq = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    return datetime.fromisoformat(stamp), rec_id, int(seq)


def create_app(src_dir: Path | str, token: str, faults: Faults | None = None) -> Starlette:
    """The stand-in CRM as an ASGI app (data read once at creation)."""
    data = _load(Path(src_dir))
    faults = faults or Faults()

    async def entity_page(request: Request) -> JSONResponse:
        fault = faults.next()
        if fault == "429":
            return JSONResponse(
                {"error": "rate limited"},
                status_code=429,
                headers={"Retry-After": str(faults.retry_after_s)},
            )
        if fault and fault.isdigit():
            return JSONResponse({"error": "injected"}, status_code=int(fault))
        if fault == "slow":
            time.sleep(faults.slow_s)  # blocks this worker like a stuck backend would
        if request.headers.get("authorization") != f"Bearer {token}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        entity = request.path_params["entity"]
        if entity not in data:
            return JSONResponse({"error": f"unknown entity {entity}"}, status_code=404)
        params = request.query_params
        try:
            limit = min(max(int(params.get("limit", 500)), 1), MAX_LIMIT)
            since = _ts(params["updated_since"]) if params.get("updated_since") else None
            after = _decode(params["cursor"]) if params.get("cursor") else None
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            return JSONResponse({"error": f"bad parameter: {exc}"}, status_code=400)
        rows = data[entity]
        # Rows are sorted by (updated_at, id) and numbered by position, so the cursor's
        # position is where the next page starts (the data is static while served).
        start = after[2] + 1 if after is not None else 0
        out, last = [], None
        for seq in range(start, len(rows)):
            stamp, rec_id, rec = rows[seq]
            if since is not None and stamp < since:
                continue
            if len(out) == limit:
                break
            out.append(rec)
            last = (stamp, rec_id, seq)
        # Later rows all have updated_at >= the last one served, so they pass `since`.
        more = last is not None and last[2] + 1 < len(rows)
        next_cursor = _encode(*last) if more and last else None
        return JSONResponse({"data": out, "next_cursor": next_cursor})

    return Starlette(routes=[Route("/api/v1/{entity}", entity_page)])


@dataclass
class RunningServer:
    base_url: str
    faults: Faults
    server: uvicorn.Server
    thread: threading.Thread


@contextmanager
def serve_in_background(
    src_dir: Path | str,
    *,
    token: str = "dev-crm-token",
    faults: Faults | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[RunningServer]:
    """Run the stand-in on `host` (ephemeral port by default) in a thread; stop on exit."""
    faults = faults or Faults()
    config = uvicorn.Config(
        create_app(src_dir, token, faults), host=host, port=port, log_level="warning",
        lifespan="off",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="crm-standin", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("stand-in CRM did not start")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningServer(f"http://{host}:{bound}", faults, server, thread)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
