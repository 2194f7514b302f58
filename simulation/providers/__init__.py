"""Local stand-ins for the providers delivery talks to, on 127.0.0.1 (see `apps` for contracts).

    with run_standins(jsonl_dir=tmp) as cluster:          # background thread, ephemeral ports
        config = cluster.providers_config(lease_s=1)      # ProvidersConfig pointing at them
        cluster.admin("whatsapp").set_faults(script=["429"])
        cluster.admin("ledger").effects()                 # {idempotency_key: effects}

    # a seeded storm from the start (see `apps` for the faults), here on the ledger only
    with run_standins(faults={"ledger": {"seed": 7, "rates": {"timeout": 0.1}}}) as cluster:

`run_standins_process()` does the same in a child process (`python -m simulation.providers`),
so the stand-ins get their own core and interpreter (benchmarks) and survive a test killing
the delivery process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from activation.config import ProvidersConfig
from simulation.providers.apps import APP_FACTORIES, Faults, StandinState

__all__ = [
    "APP_FACTORIES",
    "PROVIDERS",
    "FaultPlan",
    "Faults",
    "StandinAdmin",
    "StandinCluster",
    "StandinState",
    "delivered_lookup",
    "run_standins",
    "run_standins_process",
]

PROVIDERS = tuple(APP_FACTORIES)
TOKENS = {
    "whatsapp": "standin-whatsapp-token",
    "telegram": "123456:standin-telegram-token",
    "sms": "standin-sms-token",
    "ledger": "standin-ledger-token",
}


class StandinAdmin:
    """Sync client of one stand-in's admin endpoints (works for thread and process mode)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._http = httpx.Client(base_url=base_url, timeout=30)

    def requests(self, key: str | None = None) -> list[dict[str, Any]]:
        params = {"key": key} if key else None
        return self._http.get("/_admin/requests", params=params).raise_for_status().json()

    def effects(self) -> dict[str, int]:
        return self._http.get("/_admin/effects").raise_for_status().json()

    def lookup(self, key: str) -> dict[str, Any]:
        return self._http.get("/_admin/lookup", params={"key": key}).raise_for_status().json()

    def ledger_entries(self) -> list[dict[str, Any]]:
        """The ledger stand-in's own listing (`GET /v1/accruals`, every page): one entry per
        accrual it made, each with the `idempotency_key` that made it."""
        entries: list[dict[str, Any]] = []
        url: str | None = "/v1/accruals?limit=1000"
        while url is not None:
            answer = self._http.get(url).raise_for_status()
            entries += answer.json()
            following = answer.links.get("next")
            url = following["url"] if following else None
        return entries

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        return self._http.post("/_admin/faults", json=faults).raise_for_status().json()

    def reset(self) -> None:
        self._http.post("/_admin/reset").raise_for_status()

    def close(self) -> None:
        self._http.close()


@dataclass
class StandinCluster:
    """Running stand-ins: base URLs by provider; `states` only in thread mode."""

    urls: dict[str, str]
    states: dict[str, StandinState] = field(default_factory=dict)
    _admins: dict[str, StandinAdmin] = field(default_factory=dict)

    def admin(self, provider: str) -> StandinAdmin:
        if provider not in self._admins:
            self._admins[provider] = StandinAdmin(self.urls[provider])
        return self._admins[provider]

    def reset(self) -> None:
        for provider in self.urls:
            self.admin(provider).reset()

    def providers_config(self, **overrides: Any) -> ProvidersConfig:
        """A ProvidersConfig pointing at these stand-ins with their tokens (plus overrides)."""
        values: dict[str, Any] = {
            "whatsapp_base_url": self.urls.get("whatsapp", ""),
            "whatsapp_token": TOKENS["whatsapp"],
            "telegram_base_url": self.urls.get("telegram", ""),
            "telegram_bot_token": TOKENS["telegram"],
            "sms_base_url": self.urls.get("sms", ""),
            "sms_token": TOKENS["sms"],
            "ledger_base_url": self.urls.get("ledger", ""),
            "ledger_token": TOKENS["ledger"],
        }
        values.update(overrides)
        return ProvidersConfig(**values)

    def close(self) -> None:
        for admin in self._admins.values():
            admin.close()


FaultPlan = dict[str, dict[str, Any]]
"""Initial faults per stand-in, `{provider: {Faults field: value}}` ("*": every stand-in),
e.g. `{"ledger": {"seed": 7, "rates": {"timeout": 0.1, "reset": 0.05}, "timeout_s": 0.1}}`.
Off unless given; `/_admin/reset` clears them like any other fault."""


def _states(
    providers: Iterable[str], jsonl_dir: Path | None, faults: FaultPlan | None = None
) -> dict[str, StandinState]:
    faults = faults or {}
    unknown = set(faults) - {*APP_FACTORIES, "*"}
    if unknown:
        raise ValueError(f"faults for unknown stand-ins {sorted(unknown)}; known: {PROVIDERS}")
    states = {}
    for name in providers:
        if name not in APP_FACTORIES:
            raise ValueError(f"unknown stand-in {name!r}; known: {PROVIDERS}")
        path = Path(jsonl_dir) / f"{name}.jsonl" if jsonl_dir else None
        states[name] = StandinState(name, path, TOKENS[name])
        states[name].faults.update({**faults.get("*", {}), **faults.get(name, {})})
    return states


def _servers(states: dict[str, StandinState], host: str, ports: dict[str, int]):
    # uvicorn logs "ASGI callable returned without completing response" for the "drop"
    # fault, which is the point of that fault; keep its error log quiet.
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    servers = {}
    for name, state in states.items():
        config = uvicorn.Config(
            APP_FACTORIES[name](state), host=host, port=ports.get(name, 0), log_level="critical",
            access_log=False, lifespan="off", http="httptools", backlog=4096, proxy_headers=False,
            timeout_keep_alive=30,
        )  # fmt: skip
        servers[name] = uvicorn.Server(config)
    return servers


def _bound_urls(servers: dict[str, uvicorn.Server], host: str) -> dict[str, str]:
    return {
        name: f"http://{host}:{server.servers[0].sockets[0].getsockname()[1]}"
        for name, server in servers.items()
    }


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.new_event_loop()


@contextlib.contextmanager
def run_standins(
    providers: Iterable[str] = PROVIDERS,
    *,
    jsonl_dir: Path | str | None = None,
    host: str = "127.0.0.1",
    ports: dict[str, int] | None = None,
    faults: FaultPlan | None = None,
) -> Iterator[StandinCluster]:
    """Serve the stand-ins in a background thread (one event loop); stop them on exit."""
    states = _states(providers, Path(jsonl_dir) if jsonl_dir else None, faults)
    servers = _servers(states, host, ports or {})

    def run() -> None:
        async def main() -> None:
            await asyncio.gather(*(s.serve() for s in servers.values()))

        with asyncio.Runner(loop_factory=_new_loop) as runner:
            runner.run(main())

    thread = threading.Thread(target=run, name="provider-standins", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not all(s.started for s in servers.values()):
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("provider stand-ins did not start")
        time.sleep(0.01)
    cluster = StandinCluster(_bound_urls(servers, host), states)
    try:
        yield cluster
    finally:
        for server in servers.values():
            server.should_exit = True
        thread.join(timeout=10)
        cluster.close()
        for state in states.values():
            state.close()


@contextlib.contextmanager
def run_standins_process(
    providers: Iterable[str] = PROVIDERS,
    *,
    jsonl_dir: Path | str | None = None,
    faults: FaultPlan | None = None,
) -> Iterator[StandinCluster]:
    """Serve the stand-ins in a child process (`python -m simulation.providers`)."""
    args = [sys.executable, "-m", "simulation.providers", "--providers", ",".join(providers)]
    if jsonl_dir:
        args += ["--jsonl-dir", str(jsonl_dir)]
    if faults:
        args += ["--faults", json.dumps(faults)]
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(args, cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"stand-in process exited with {proc.wait()}")
        cluster = StandinCluster(json.loads(line))
        yield cluster
        cluster.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve_forever(
    providers: Iterable[str], jsonl_dir: Path | None, host: str, port: int,
    faults: FaultPlan | None = None,
) -> None:  # fmt: skip
    """Run until SIGINT/SIGTERM; print one JSON line of base URLs once listening."""
    states = _states(providers, jsonl_dir, faults)
    ports = {name: port + i for i, name in enumerate(states)} if port else {}
    servers = _servers(states, host, ports)

    async def main() -> None:
        tasks = [asyncio.create_task(s.serve()) for s in servers.values()]
        while not all(s.started for s in servers.values()):
            if any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.01)
        print(json.dumps(_bound_urls(servers, host)), flush=True)
        await asyncio.gather(*tasks)

    with asyncio.Runner(loop_factory=_new_loop) as runner:
        runner.run(main())
    os._exit(0)  # the daemon-free process has nothing else to flush


def delivered_lookup(urls: dict[str, str]):
    """An async `already_delivered(key) -> bool` backed by the WhatsApp stand-in.

    Plays the role the status webhooks (marts.fct_messenger_status_events) play in
    production: the stand-in knows every message it accepted, as if each one's status
    webhook, carrying our key in `biz_opaque_callback_data`, had already arrived. Only
    WhatsApp: the Telegram Bot API has no key and no delivery reports to ask.
    """
    target = urls.get("whatsapp")
    client = httpx.AsyncClient(timeout=10)

    async def already_delivered(key: str) -> bool:
        if target is None:
            return False
        answer = await client.get(f"{target}/_admin/lookup", params={"key": key})
        return bool(answer.raise_for_status().json().get("found"))

    return already_delivered
