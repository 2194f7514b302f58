"""The webhook receiver: a raw ASGI app served by uvicorn (httptools + uvloop).

Endpoints:

- ``GET  /webhooks/whatsapp`` — Cloud API verification: ``hub.mode=subscribe`` and
  ``hub.verify_token`` equal to the configured token → 200 with ``hub.challenge`` echoed;
  anything else → 403.
- ``POST /webhooks/whatsapp`` — notifications, ``X-Hub-Signature-256`` HMAC of the raw body.
- ``POST /webhooks/telegram`` — Bot API updates, ``X-Telegram-Bot-Api-Secret-Token``.
- ``POST /webhooks/sms`` — delivery reports, ``X-Signature`` HMAC of the raw body.
- ``GET  /webhooks/health`` — JSON counters of the answering worker process (`pid`): answers
  by status code, the sink (`spool` or `kafka`), spool group commits (`spool_batches`) and
  the records they wrote (`spool_records`) — for Kafka, the acknowledgement rounds and the
  records the broker acknowledged.

Answers: 200 once the raw body is durably in the spool (see `ingestion.messenger.spool`) or,
with ``config.kafka`` set, acknowledged by the Kafka broker (`ingestion.messenger.kafka`);
401 when the signature/token header is missing; 403 when it does not match (nothing
stored); 400 for a correctly signed body that is not a JSON object (nothing stored: a
retry of the same bytes cannot succeed either, so it is logged with its size and dropped
rather than kept in a reject log); 413 for bodies over `max_body_bytes`; 503 if the spool
cannot write or the broker did not acknowledge in time (the provider retries). Parsing into
events is left to the loader: the hot path only authenticates, checks the body is JSON, and
appends.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import json
import logging
import os
import socket
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ingestion.config import ReceiverConfig
from ingestion.messenger.signing import signature_matches
from ingestion.messenger.spool import Spool

if TYPE_CHECKING:
    from ingestion.messenger.kafka import KafkaSink

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ROUTES = {
    "/webhooks/whatsapp": "whatsapp",
    "/webhooks/telegram": "telegram",
    "/webhooks/sms": "sms",
}
HEALTH_PATH = "/webhooks/health"
# The header each provider authenticates with (ASGI gives lower-case names).
AUTH_HEADERS = {
    "whatsapp": b"x-hub-signature-256",
    "sms": b"x-signature",
    "telegram": b"x-telegram-bot-api-secret-token",
}


def _plain(
    status: int, body: bytes, content_type: bytes = b"text/plain"
) -> tuple[Message, Message]:
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(body))],
    }
    return start, {"type": "http.response.body", "body": body}


_RESPONSES = {
    200: _plain(200, b"ok"),
    400: _plain(400, b"body is not a JSON object"),
    401: _plain(401, b"missing signature"),
    403: _plain(403, b"bad signature"),
    404: _plain(404, b"not found"),
    405: _plain(405, b"method not allowed"),
    413: _plain(413, b"body too large"),
    503: _plain(503, b"not stored, retry"),
}


class WebhookApp:
    """The ASGI callable. Picklable until started (uvicorn's multi-worker mode spawns it)."""

    def __init__(self, config: ReceiverConfig) -> None:
        self.config = config
        self._keys = {
            "whatsapp": config.whatsapp_app_secret.encode(),
            "sms": config.sms_webhook_secret.encode(),
            "telegram": config.telegram_secret_token.encode(),
        }
        self.sink: Spool | KafkaSink | None = None
        self.counters: Counter[str] = Counter()
        self._start_lock: asyncio.Lock | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])  # type: ignore[misc]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            status = await self._http(scope, receive, send)
            self.counters[str(status)] += 1
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def start(self) -> None:
        """Start the sink (idempotent): the spool writer after recovering dead segments, or
        the Kafka producer."""
        if self.config.gil_switch_interval_s is not None:
            sys.setswitchinterval(self.config.gil_switch_interval_s)
        # Everything imported so far lives as long as the process: moved out of the cyclic
        # collector's generations, it is not rescanned by every full collection while the
        # worker serves (the worker imports the settings' whole config tree at start).
        gc.freeze()
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self.sink is None:
                sink: Spool | KafkaSink
                if self.config.kafka is not None:
                    from ingestion.messenger.kafka import KafkaSink

                    sink = KafkaSink(self.config.kafka)
                else:
                    sink = Spool(
                        self.config.spool_root,
                        max_bytes=self.config.segment_max_bytes,
                        max_age_s=self.config.segment_max_age_s,
                    )
                await sink.start()
                self.sink = sink

    async def stop(self) -> None:
        """Flush and close the sink (clean shutdown → a closed segment / no record in flight)."""
        if self.sink is not None:
            sink, self.sink = self.sink, None
            await sink.close()

    async def _answer(self, send: Send, status: int) -> int:
        start, body = _RESPONSES[status]
        await send(start)
        await send(body)
        return status

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> int:
        path = scope["path"]
        provider = ROUTES.get(path)
        method = scope["method"]
        if provider is None:
            if path == HEALTH_PATH and method == "GET":
                return await self._health(send)
            return await self._answer(send, 404)
        if method == "GET" and provider == "whatsapp":
            return await self._verify_challenge(scope, send)
        if method != "POST":
            return await self._answer(send, 405)

        wanted = AUTH_HEADERS[provider]
        auth = None
        length = 0
        for name, value in scope["headers"]:
            if name == wanted:
                auth = value
            elif name == b"content-length" and value.isdigit():
                length = int(value)
        if auth is None:
            return await self._answer(send, 401)
        key = self._keys[provider]
        # Telegram's token needs no body: reject forgeries before reading it.
        if provider == "telegram" and not hmac.compare_digest(auth, key):
            return await self._answer(send, 403)
        if length > self.config.max_body_bytes:
            return await self._answer(send, 413)

        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return 499
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.config.max_body_bytes:
                return await self._answer(send, 413)

        if provider != "telegram" and not signature_matches(key, body, auth):
            return await self._answer(send, 403)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            log.warning(
                "%s webhook: signed body of %d bytes is not a JSON object", provider, len(body)
            )
            return await self._answer(send, 400)

        sink = self.sink
        if sink is None:
            await self.start()
            sink = self.sink
            assert sink is not None
        try:
            await sink.append(provider, body)
        except Exception:
            log.exception("%s webhook: %s append failed", provider, type(sink).__name__)
            return await self._answer(send, 503)
        return await self._answer(send, 200)

    async def _verify_challenge(self, scope: Scope, send: Send) -> int:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        mode = query.get("hub.mode", [""])[0]
        token = query.get("hub.verify_token", [""])[0]
        challenge = query.get("hub.challenge", [""])[0]
        expected = self.config.whatsapp_verify_token.encode()
        if mode == "subscribe" and challenge and hmac.compare_digest(token.encode(), expected):
            start, body = _plain(200, challenge.encode())
            await send(start)
            await send(body)
            return 200
        return await self._answer(send, 403)

    async def _health(self, send: Send) -> int:
        spool = self.sink  # the health keys predate the Kafka sink: kept for their readers
        body = json.dumps(
            {
                "status": "ok" if spool is not None else "starting",
                "sink": "spool" if self.config.kafka is None else "kafka",
                "pid": os.getpid(),
                "responses": dict(self.counters),
                "open_segment": None
                if spool is None or spool.current_segment is None
                else spool.current_segment.name,
                "spool_batches": 0 if spool is None else spool.batches,
                "spool_records": 0 if spool is None else spool.records_written,
            }
        ).encode()
        start, message = _plain(200, body, b"application/json")
        await send(start)
        await send(message)
        return 200


def create_app(config: ReceiverConfig) -> WebhookApp:
    """The receiver's ASGI app."""
    return WebhookApp(config)


def bind_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket (port 0 → an ephemeral port; read it from getsockname())."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app: WebhookApp, *, workers: int = 1, log_level: str = "warning") -> Any:
    """The uvicorn settings the receiver is tuned for (httptools, uvloop, no access log, no
    proxy-headers middleware: providers connect directly, and it costs a pass over every
    request's headers)."""
    import uvicorn

    return uvicorn.Config(
        app,
        http="httptools",
        loop="uvloop",
        lifespan="on",
        access_log=False,
        log_level=log_level,
        server_header=False,
        date_header=False,
        proxy_headers=False,
        workers=workers,
        timeout_graceful_shutdown=10,
    )


def serve(
    config: ReceiverConfig,
    *,
    workers: int = 1,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Run the receiver until SIGINT/SIGTERM (blocking), on `config.host`/`config.port`.

    `workers` > 1 starts that many processes on one shared socket; each keeps its own spool
    segments. `on_ready(port)` is called once the socket listens (port 0 → ephemeral).
    A clean stop closes every open segment.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    app = WebhookApp(config)
    sock = bind_socket(config.host, config.port)
    if on_ready is not None:
        on_ready(sock.getsockname()[1])
    uv_config = uvicorn_config(app, workers=workers)
    if workers > 1:
        Multiprocess(uv_config, sockets=[sock]).run()
    else:
        uvicorn.Server(uv_config).run(sockets=[sock])
