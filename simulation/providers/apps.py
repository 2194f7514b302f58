"""Stand-in provider servers: WhatsApp Cloud API, Telegram Bot API, SMS gateway, loyalty ledger.

Each `create_*_app(state)` is an ASGI app following the public contract of its provider
closely enough for delivery to be tested against it (`StandinApp`: the provider endpoints
answered without a framework, so the stand-in costs its client little CPU), plus admin
endpoints (Starlette):

- `GET  /_admin/requests[?key=]` — every provider request: seq, t (unix s), path, key, status,
  effect (bool: this request applied an effect), fault (and t0, conn, retry_after: below).
- `GET  /_admin/effects` — `{key: number of effects}`; the exactly-once oracle.
- `GET  /_admin/lookup?key=` — `{"found": bool, "provider_message_id": ...}`: what a status
  webhook / provider record would tell us about a key (backs `already_delivered`).
- `POST /_admin/faults` — set `Faults` fields (JSON object); `POST /_admin/reset` clears all.

Effects are counted per idempotency key: WhatsApp carries it in `biz_opaque_callback_data`,
SMS in `client_ref`, the ledger in the `Idempotency-Key` header; Telegram's API has no such
field, so the client sends the `Idempotency-Key` header (ignored by the real Bot API) and the
stand-in records it. WhatsApp and Telegram do NOT dedupe (neither does the real API): a second
request with the same key is a second effect. SMS dedupes on `client_ref`, the ledger on
`Idempotency-Key` (a replay returns the original status and body; a different body → 422).

Faults, consumed one per provider request from `script`: "429" (Retry-After =
`retry_after_s`), "500"/"502"/"503" (before any work: no effect), "slow" (sleep `slow_s`, then
work normally), and four faults AFTER the provider committed (the effect is recorded, the
answer is lost or wrong — the client cannot know what happened): "timeout" (sleep
`timeout_s` before answering — the client has given up), "drop" (start the answer, then close
the connection), "reset" (abort the connection with a TCP RST, no answer), "committed_500"
/"committed_502"/"committed_503" (answer 5xx although the work was done). `delay_s` delays
every request.

A seeded storm (off by default): when `script` is empty, each request draws its fault with
probability `rates[fault]` from a `random.Random(seed)`; a drawn 5xx (before work) repeats
for `burst` consecutive requests (5xx bursts). The same seed and the same order of
requests give the same faults. Every request's log row carries `t0` (arrival), `t` (when it
was answered), `conn` (its connection, `conn-<n>`) and, for a 429, the `retry_after` it told
the client.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import random
import re
import socket
import struct
import threading
import time
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

FAULT_FIELDS = (
    "script",
    "delay_s",
    "retry_after_s",
    "slow_s",
    "timeout_s",
    "blocked",
    "undeliverable",
    "seed",
    "rates",
    "burst",
)
SERVER_ERRORS = ("500", "502", "503")
# Faults applied after the effect was recorded: the outcome is unknown to the client.
AFTER_COMMIT = ("timeout", "drop", "reset", *(f"committed_{s}" for s in SERVER_ERRORS))
FAULTS = ("429", *SERVER_ERRORS, "slow", *AFTER_COMMIT)


@dataclass
class Faults:
    """Runtime fault injection (see module docstring). `blocked`/`undeliverable` are recipients."""

    script: list[str] = field(default_factory=list)
    delay_s: float = 0.0
    retry_after_s: float = 1.0
    slow_s: float = 0.5
    timeout_s: float = 3.0
    blocked: list[str] = field(default_factory=list)
    undeliverable: list[str] = field(default_factory=list)
    seed: int = 0
    rates: dict[str, float] = field(default_factory=dict)
    burst: int = 1

    def __post_init__(self) -> None:
        self._check()
        self._rng = random.Random(self.seed)
        self._burst: tuple[str, int] = ("", 0)  # the 5xx being repeated, requests left

    def _check(self) -> None:
        unknown = [f for f in [*self.script, *self.rates] if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown faults {unknown}; known: {FAULTS}")
        if any(not 0 <= p <= 1 for p in self.rates.values()) or sum(self.rates.values()) > 1:
            raise ValueError("rates are probabilities in 0..1 summing to at most 1")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")

    def next(self) -> str | None:
        if self.script:
            return self.script.pop(0)
        fault, left = self._burst
        if left:
            self._burst = (fault, left - 1)
            return fault
        if not self.rates:
            return None
        draw = self._rng.random()
        for fault, p in self.rates.items():
            if draw < p:
                if fault in SERVER_ERRORS:
                    self._burst = (fault, self.burst - 1)
                return fault
            draw -= p
        return None

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FAULT_FIELDS}

    def update(self, values: dict[str, Any]) -> None:
        unknown = set(values) - set(FAULT_FIELDS)
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}; known: {FAULT_FIELDS}")
        before = self.as_dict()
        for name, value in values.items():
            value = list(value) if isinstance(value, list) else value
            setattr(self, name, dict(value) if isinstance(value, dict) else value)
        try:
            self._check()
        except ValueError:
            for name, value in before.items():
                setattr(self, name, value)
            raise
        if {"seed", "rates", "burst"} & set(values):  # a new storm starts from its seed
            self._rng = random.Random(self.seed)
            self._burst = ("", 0)


class StandinState:
    """What one stand-in remembers: requests, effects per key, stored results, faults."""

    def __init__(self, provider: str, jsonl_path: Path | None = None, token: str = "") -> None:
        self.provider = provider
        self.token = token
        self.faults = Faults()
        self.lock = threading.Lock()  # admin reads may come from another thread
        self.jsonl_path = jsonl_path
        self._jsonl = jsonl_path.open("a", encoding="utf-8") if jsonl_path else None
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests: list[dict[str, Any]] = []
            self.effects: Counter[str] = Counter()
            self.results: dict[str, tuple[str, int, dict[str, Any], str]] = {}
            self.seq = itertools.count(1)
            self.faults = Faults()

    def record(
        self, path: str, key: str | None, status: int, effect: bool, fault: str | None,
        t0: float | None = None, retry_after: float | None = None, conn: str = "",
    ) -> None:  # fmt: skip
        now = time.time()
        entry = {
            "seq": next(self.seq),
            "t": now,
            "t0": t0 if t0 is not None else now,
            "provider": self.provider,
            "path": path,
            "key": key,
            "status": status,
            "effect": effect,
            "fault": fault,
            "retry_after": retry_after,
            "conn": conn,
        }
        with self.lock:
            self.requests.append(entry)
            if effect and key is not None:
                self.effects[key] += 1
        if self._jsonl is not None:
            self._jsonl.write(json.dumps(entry) + "\n")
            self._jsonl.flush()

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None


def _fingerprint(body: Any) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _admin_routes(state: StandinState) -> list[Route]:
    async def requests(request: Request) -> JSONResponse:
        key = request.query_params.get("key")
        with state.lock:
            rows = [r for r in state.requests if key is None or r["key"] == key]
        return JSONResponse(rows)

    async def effects(request: Request) -> JSONResponse:
        with state.lock:
            return JSONResponse(dict(state.effects))

    async def lookup(request: Request) -> JSONResponse:
        key = request.query_params.get("key", "")
        with state.lock:
            stored = state.results.get(key)
        found = stored is not None and 200 <= stored[1] < 300
        return JSONResponse({"found": found, "provider_message_id": stored[0] if found else None})

    async def faults(request: Request) -> JSONResponse:
        if request.method == "GET":
            return JSONResponse(state.faults.as_dict())
        try:
            state.faults.update(await request.json())
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(state.faults.as_dict())

    async def reset(request: Request) -> JSONResponse:
        state.reset()
        return JSONResponse({"ok": True})

    return [
        Route("/_admin/requests", requests),
        Route("/_admin/effects", effects),
        Route("/_admin/lookup", lookup),
        Route("/_admin/faults", faults, methods=["GET", "POST"]),
        Route("/_admin/reset", reset, methods=["POST"]),
    ]


# --- the lean request path --------------------------------------------------------------------


@dataclass
class Answer:
    """A provider endpoint's answer: JSON body, status, extra headers; `drop` loses it."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    reset: bool = False  # abort the connection (TCP RST) instead of answering

    async def send(self, send: Send) -> None:
        if self.reset and await _reset_connection(send):
            return
        content = orjson.dumps(self.body)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(content)),
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()),
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        if not self.drop:  # a started, never finished answer: uvicorn closes the connection
            await send({"type": "http.response.body", "body": content})


async def _reset_connection(send: Send) -> bool:
    """Abort the request's connection with a TCP RST (SO_LINGER 0): a peer reset, as a
    crashing proxy or provider gives. uvicorn's `send` is a bound method of its request
    cycle, which holds the transport; False (the caller drops instead) when it is not."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return False
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    await asyncio.sleep(0)  # let uvicorn see the disconnect: it then sends no 500 of its own
    return True


@dataclass(frozen=True)
class Call:
    """One provider request as the endpoints see it (header names lower-case)."""

    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes
    conn: str = ""  # which connection the request came on (`StandinApp._conn`)

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return orjson.loads(self.body)
        except ValueError:  # orjson.JSONDecodeError is one
            return None


Handler = Callable[[Call], Awaitable[Answer]]


class StandinApp:
    """Raw ASGI app: provider endpoints are matched and answered directly (no framework on
    the hot path: the stand-in shares the machine with the client it measures); anything
    else — the admin endpoints — goes to a Starlette app."""

    def __init__(self, endpoints: list[tuple[str, str, Handler]], fallback: Starlette) -> None:
        self.endpoints = [
            (method, re.compile(pattern), handler) for method, pattern, handler in endpoints
        ]
        self.fallback = fallback
        self._conns: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._conn_ids = itertools.count(1)

    def _conn(self, scope: Scope, send: Send) -> str:
        """The request's connection: a serial per server-side transport (uvicorn's `send`
        is bound to its request cycle, which holds it). Not the client's port: on loopback
        Linux reuses a closed connection's port at once (tcp_tw_reuse)."""
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if transport is None:
            host, port = scope.get("client") or ("", 0)
            return f"{host}:{port}"
        conn = self._conns.get(transport)
        if conn is None:
            conn = self._conns[transport] = f"conn-{next(self._conn_ids)}"
        return conn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            for method, pattern, handler in self.endpoints:
                if scope["method"] == method and (match := pattern.fullmatch(path)):
                    body = b""
                    more = True
                    while more:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            return
                        body += message.get("body", b"")
                        more = message.get("more_body", False)
                    headers = {
                        k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                    }
                    call = Call(path, match.groupdict(), headers, body, self._conn(scope, send))
                    answer = await handler(call)
                    await answer.send(send)
                    return
        await self.fallback(scope, receive, send)


Work = Callable[[], tuple[int, dict[str, Any], bool, dict[str, str]]]


async def _with_faults(
    state: StandinState,
    call: Call,
    key: str | None,
    work: Work,
    rate_limited: Callable[[float], Answer],
    server_error: Callable[[int], Answer],
) -> Answer:
    """Apply the next fault around `work()` → (status, body, effect, headers)."""
    t0 = time.time()
    fault = state.faults.next()
    if state.faults.delay_s:
        await asyncio.sleep(state.faults.delay_s)
    if fault == "429":
        retry_after = state.faults.retry_after_s
        state.record(call.path, key, 429, False, fault, t0, retry_after, call.conn)
        return rate_limited(retry_after)
    if fault and fault.isdigit():
        state.record(call.path, key, int(fault), False, fault, t0, conn=call.conn)
        return server_error(int(fault))
    if fault == "slow":
        await asyncio.sleep(state.faults.slow_s)
    status, body, effect, headers = work()
    if fault and fault.startswith("committed_"):  # done, but the answer says it failed
        wrong = server_error(int(fault.removeprefix("committed_")))
        state.record(call.path, key, wrong.status, effect, fault, t0, conn=call.conn)
        return wrong
    state.record(call.path, key, status, effect, fault, t0, conn=call.conn)
    if fault == "timeout":
        await asyncio.sleep(state.faults.timeout_s)
    return Answer(status, body, headers, drop=fault == "drop", reset=fault == "reset")


def _bearer_ok(state: StandinState, call: Call) -> bool:
    return call.headers.get("authorization") == f"Bearer {state.token}"


# --- WhatsApp Cloud API ---------------------------------------------------------------------


def _wa_error(code: int, message: str) -> dict[str, Any]:
    error = {"message": message, "type": "OAuthException", "code": code,
             "error_data": {"details": message}, "fbtrace_id": "AbCdEfStandin"}  # fmt: skip
    return {"error": error}


def create_whatsapp_app(state: StandinState) -> StandinApp:
    """`POST /{version}/{phone_number_id}/messages` (template messages), bearer token."""
    ids = itertools.count(1)

    async def messages(call: Call) -> Answer:
        if not _bearer_ok(state, call):
            return Answer(401, _wa_error(190, "Invalid OAuth access token."))
        body = call.json()
        if not isinstance(body, dict):
            return Answer(400, _wa_error(100, "Invalid parameter: body is not JSON"))
        key = body.get("biz_opaque_callback_data")

        def work() -> tuple[int, dict[str, Any], bool, dict[str, str]]:
            template = body.get("template") or {}
            if body.get("messaging_product") != "whatsapp" or body.get("type") != "template":
                return 400, _wa_error(100, "Invalid parameter"), False, {}
            if not body.get("to") or not template.get("name"):
                return 400, _wa_error(100, "Missing to/template.name"), False, {}
            if not (template.get("language") or {}).get("code"):
                return 400, _wa_error(100, "Missing template.language.code"), False, {}
            to = str(body["to"])
            if to in state.faults.undeliverable:
                return 400, _wa_error(131026, "Message undeliverable"), False, {}
            wamid = f"wamid.STANDIN{next(ids):012d}"
            if key:
                state.results[key] = (wamid, 200, {}, "")
            out = {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
                "messages": [{"id": wamid, "message_status": "accepted"}],
            }
            return 200, out, True, {}

        return await _with_faults(
            state, call, key, work,
            lambda ra: Answer(429, _wa_error(130429, "Rate limit hit"), {"Retry-After": str(ra)}),
            lambda st: Answer(st, _wa_error(131000, "Something went wrong")),
        )  # fmt: skip

    return StandinApp(
        [("POST", r"/(?P<version>[^/]+)/(?P<phone_number_id>[^/]+)/messages", messages)],
        Starlette(routes=_admin_routes(state)),
    )


# --- Telegram Bot API -----------------------------------------------------------------------


def _tg(status: int, description: str, **extra: Any) -> Answer:
    body = {"ok": False, "error_code": status, "description": description, **extra}
    return Answer(status, body)


def create_telegram_app(state: StandinState) -> StandinApp:
    """`POST /bot<token>/sendMessage` {chat_id, text} → {"ok": true, "result": {message_id}}."""
    ids = itertools.count(1)

    async def send_message(call: Call) -> Answer:
        if call.params["token"] != state.token:
            return _tg(401, "Unauthorized")
        body = call.json()
        key = call.headers.get("idempotency-key")

        def work() -> tuple[int, dict[str, Any], bool, dict[str, str]]:
            if not isinstance(body, dict) or not body.get("chat_id"):
                return 400, _tg(400, "Bad Request: chat not found").body, False, {}
            if not body.get("text"):
                return 400, _tg(400, "Bad Request: message text is empty").body, False, {}
            chat = str(body["chat_id"])
            if chat in state.faults.blocked:
                desc = "Forbidden: bot was blocked by the user"
                return 403, _tg(403, desc).body, False, {}
            message_id = next(ids)
            if key:
                state.results[key] = (str(message_id), 200, {}, "")
            result = {"message_id": message_id, "date": int(time.time()),
                      "chat": {"id": int(chat) if chat.lstrip("-").isdigit() else chat,
                               "type": "private"},
                      "text": body["text"]}  # fmt: skip
            return 200, {"ok": True, "result": result}, True, {}

        return await _with_faults(
            state, call, key, work,
            lambda ra: _tg(429, f"Too Many Requests: retry after {ra}",
                           parameters={"retry_after": ra}),
            lambda st: _tg(st, "Internal Server Error"),
        )  # fmt: skip

    return StandinApp(
        [("POST", r"/bot(?P<token>[^/]+)/sendMessage", send_message)],
        Starlette(routes=_admin_routes(state)),
    )


# --- generic SMS gateway and loyalty ledger (idempotent by key) -----------------------------


def _err(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _rate_limited(retry_after: float) -> Answer:
    return Answer(429, _err("rate_limited", "slow down"), {"Retry-After": str(retry_after)})


def _server_error(status: int) -> Answer:
    return Answer(status, _err("server_error", "try again"))


def _idempotent(
    state: StandinState, key: str, body: dict[str, Any], create: Any
) -> tuple[int, dict[str, Any], bool, dict[str, str]]:
    """Replay the stored answer for a known key with the same body; 422 for another body."""
    fingerprint = _fingerprint(body)
    stored = state.results.get(key)
    if stored is not None:
        _, status, answer, stored_fp = stored
        if stored_fp != fingerprint:
            message = (f"Idempotency key {key!r} was already used with a different request "
                       "body; use a new key for a different request")  # fmt: skip
            return 422, _err("idempotency_key_reused", message), False, {}
        return status, answer, False, {"Idempotent-Replayed": "true"}
    status, answer, ref = create()
    if 200 <= status < 300:
        state.results[key] = (ref, status, answer, fingerprint)
    return status, answer, 200 <= status < 300, {}


def create_sms_app(state: StandinState) -> StandinApp:
    """`POST /v1/messages` {to, text, sender?, client_ref} → 201 {id, status, client_ref}.

    Dedupes on `client_ref`: a repeat returns the original answer (same status and body);
    the same `client_ref` with another body → 422 `idempotency_key_reused`. Delivery reports
    (SOURCES.md, webhooks) carry `client_ref` back as `message_id`.
    """
    ids = itertools.count(1)

    async def send(call: Call) -> Answer:
        if not _bearer_ok(state, call):
            return Answer(401, _err("unauthorized", "bad token"))
        body = call.json()
        key = body.get("client_ref") if isinstance(body, dict) else None

        def work() -> tuple[int, dict[str, Any], bool, dict[str, str]]:
            if not isinstance(body, dict) or not key or not body.get("to") or not body.get("text"):
                return 400, _err("invalid_request", "to, text, client_ref required"), False, {}
            if str(body["to"]) in state.faults.undeliverable:
                return 400, _err("invalid_number", "number not reachable"), False, {}

            def create() -> tuple[int, dict[str, Any], str]:
                sms_id = f"sms_{next(ids):010d}"
                return 201, {"id": sms_id, "status": "accepted", "client_ref": key}, sms_id

            return _idempotent(state, key, body, create)

        return await _with_faults(state, call, key, work, _rate_limited, _server_error)

    return StandinApp([("POST", r"/v1/messages", send)], Starlette(routes=_admin_routes(state)))


LEDGER_DEFAULT_LIMIT, LEDGER_MAX_LIMIT = 100, 1000


def create_ledger_app(state: StandinState) -> StandinApp:
    """`POST /v1/accruals` with `Idempotency-Key` and {customer_id, phone, amount, currency,
    source_event_id} → 201 {id, status: "accrued", ...}. Amount is a decimal string > 0.

    A processed key replays the original status and body (header `Idempotent-Replayed`);
    the key with a different body → 422 `idempotency_key_reused`; no key → 400.
    `GET /v1/accruals?limit=&starting_after=` lists the ledger's entries for reconciliation,
    each with the `idempotency_key` that created it, in id order: at most `limit` (default
    100, max 1000) per page, the next page named in a `Link: <…>; rel="next"` header (a
    cursor: the last id of the page), as list APIs that answer with a bare array do.
    """
    ids = itertools.count(1)

    async def accrue(call: Call) -> Answer:
        if not _bearer_ok(state, call):
            return Answer(401, _err("unauthorized", "bad token"))
        key = call.headers.get("idempotency-key")
        body = call.json()

        def work() -> tuple[int, dict[str, Any], bool, dict[str, str]]:
            if not key:
                return 400, _err("idempotency_key_required", "send Idempotency-Key"), False, {}
            if not isinstance(body, dict):
                return 400, _err("invalid_request", "body must be JSON"), False, {}
            try:
                amount = Decimal(str(body.get("amount")))
            except InvalidOperation:
                amount = Decimal("NaN")
            if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
                msg = "amount must be a positive decimal string with 2 places"
                return 400, _err("invalid_amount", msg), False, {}
            missing = [f for f in ("currency", "source_event_id") if not body.get(f)]
            if missing or not (body.get("customer_id") or body.get("phone")):
                msg = f"missing {missing or ['customer_id/phone']}"
                return 400, _err("invalid_request", msg), False, {}

            def create() -> tuple[int, dict[str, Any], str]:
                entry_id = f"le_{next(ids):010d}"
                answer = {"id": entry_id, "status": "accrued", "amount": str(amount),
                          "currency": body["currency"], "customer_id": body.get("customer_id"),
                          "phone": body.get("phone"), "source_event_id": body["source_event_id"],
                          "created_at": time.time()}  # fmt: skip
                return 201, answer, entry_id

            return _idempotent(state, key, body, create)

        return await _with_faults(state, call, key, work, _rate_limited, _server_error)

    async def entries(request: Request) -> JSONResponse:
        try:
            limit = int(request.query_params.get("limit", LEDGER_DEFAULT_LIMIT))
        except ValueError:
            limit = 0
        if not 1 <= limit <= LEDGER_MAX_LIMIT:
            msg = f"limit must be an integer in 1..{LEDGER_MAX_LIMIT}"
            return JSONResponse(_err("invalid_request", msg), status_code=400)
        after = request.query_params.get("starting_after", "")
        with state.lock:
            rows = sorted(
                ({**answer, "idempotency_key": key}
                 for key, (_, status, answer, _) in state.results.items()
                 if status == 201 and answer["id"] > after),
                key=lambda row: row["id"],
            )  # fmt: skip
        page, more = rows[:limit], len(rows) > limit
        headers = {}
        if more:
            following = request.url.include_query_params(limit=limit, starting_after=page[-1]["id"])
            headers["Link"] = f'<{following}>; rel="next"'
        return JSONResponse(page, headers=headers)

    return StandinApp(
        [("POST", r"/v1/accruals", accrue)],
        Starlette(routes=[Route("/v1/accruals", entries, methods=["GET"]), *_admin_routes(state)]),
    )


APP_FACTORIES: dict[str, Callable[[StandinState], StandinApp]] = {
    "whatsapp": create_whatsapp_app,
    "telegram": create_telegram_app,
    "sms": create_sms_app,
    "ledger": create_ledger_app,
}
