"""What every provider client shares: one request per attempt, classification, retries.

Guarantees (the payments-API reference: at-most-once *effect* under retries):

- Every request carries our idempotency key — in the `Idempotency-Key` header always, and
  in the provider's own field where the contract has one (WhatsApp
  `biz_opaque_callback_data`, SMS `client_ref`). Providers with native idempotency (SMS
  gateway, ledger) turn a repeat into a replay of the original answer, so retrying after
  an unknown outcome (timeout, connection lost after the request went out) is safe.
- WhatsApp Cloud API and Telegram have no idempotency: a repeat is a second message.
  Residual risk, minimised: before re-sending a request whose outcome is unknown (an
  ambiguous failure in this run, or a row recovered from a crashed run), the client asks
  `already_delivered(key)` (backed by status webhooks in marts.fct_messenger_status_events, or the
  stand-ins' lookup) and records the row as sent if the provider has it. What remains: a
  message the provider accepted but whose status webhook has not arrived yet when we ask
  (seconds) is sent twice. Telegram sends no status webhooks, so there is nothing to ask:
  delivery calls `send(resend_unknown=False)` and applies `telegram_crash_policy`
  (`activation.delivery`: one recorded resend, or none). Ambiguous: timeouts, connections
  lost after the request went out, and 5xx answers (a gateway's 502 or a provider's 500
  can follow its commit). Failures *before* the request left (connect errors, pool
  timeouts) and 429s are not.
- Retries: 429, 5xx, timeouts and connection errors, exponential backoff with jitter,
  `Retry-After` / `retry_after` honoured (the whole provider pauses, as flood control
  means; a pause longer than `max_retry_wait_s` sends this run's rows for that provider
  back to the outbox, due after it, without a request); at most `max_attempts_per_run`
  tries, then the row goes back to the outbox.
- Rate limit: one `aiolimiter.AsyncLimiter` per provider, bucket `rate_burst` (1 = even
  spacing, so the measured rate matches the configured one from the first message).
"""

from __future__ import annotations

import asyncio
import inspect
import math
import random
import socket
import time
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
import orjson
from aiolimiter import AsyncLimiter

from activation.config import ProvidersConfig
from activation.providers.transport import (
    BEFORE_WRITE,
    SingleConnectionTransport,
    default_ssl_context,
)

NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]

AlreadyDelivered = Callable[[str], "bool | str | Awaitable[bool | str | None] | None"]
"""`already_delivered(key)` → truthy (optionally the provider message id) if the provider
already has a message for our key. Consulted only when a resend's outcome is unknown."""


@dataclass(frozen=True)
class OutboxItem:
    """One claimed outbox row as a provider sees it (payload = the planned model as JSON)."""

    key: str
    kind: Literal["message", "accrual"]
    channel: str
    payload: dict[str, Any]
    uncertain: bool = False  # a previous attempt's outcome is unknown (crash, timeout)
    attempts: int = 1  # claims so far, including this one


@dataclass
class Attempt:
    """The classified answer to one HTTP request."""

    kind: Literal["sent", "retry", "permanent"]
    provider_message_id: str | None = None
    error_code: str | None = None
    message: str | None = None
    retry_after_s: float | None = None
    opt_out: bool = False
    ambiguous: bool = False  # the request may have had its effect; the answer was lost
    replayed: bool = False


@dataclass
class SendResult:
    """The outcome of one row in one run (after in-run retries)."""

    key: str
    provider: str
    ok: bool
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    permanent: bool = False
    opt_out: bool = False
    uncertain: bool = False  # failed, and some attempt's outcome is unknown
    retry_after_s: float | None = None
    http_attempts: int = 0
    confirmed_by_lookup: bool = False  # sent per `already_delivered`, not a fresh request
    ambiguous_resends: int = 0  # resends after an unknown outcome without a positive lookup
    ambiguous_attempts: int = 0  # requests of this call whose outcome is unknown
    replayed: bool = False
    deferred: bool = False  # sent back unsent: the provider is paused (Retry-After)


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds (delta-seconds, fractional accepted, or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None  # nan, inf: no value
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" (RFC 5322: UTC, source zone unknown) parses naive
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _environment_proxy(base_url: str) -> str | None:
    """The proxy an httpx client would take from the environment for `base_url` (None: direct)."""
    url = httpx.URL(base_url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(url.host):
        return None
    return proxy


def json_or_none(response: httpx.Response) -> Any:
    """The answer's JSON body (orjson: a tenth of the stdlib's CPU), or None if it is not JSON."""
    try:
        return orjson.loads(response.content)
    except ValueError:  # orjson.JSONDecodeError is one
        return None


@dataclass
class _Gate:
    """Provider-wide pause after a 429 with Retry-After: every sender waits it out."""

    until: float = 0.0
    waits: list[float] = field(default_factory=list)

    def block(self, seconds: float) -> None:
        self.until = max(self.until, time.monotonic() + seconds)

    def left(self) -> float:
        return max(0.0, self.until - time.monotonic())

    async def wait(self) -> None:
        while (left := self.left()) > 0:
            await asyncio.sleep(left)


class ProviderPaused(Exception):
    """The provider asked every sender to wait longer than a claim may be held."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"paused for {seconds:.1f} s")
        self.seconds = seconds


class Provider(ABC):
    """Base client: subclasses build the request and classify the answer."""

    name: str = ""
    native_idempotency: bool = False

    def __init__(self, config: ProvidersConfig, base_url: str, rate_per_s: float | None) -> None:
        self.config = config
        self.base_url = base_url
        timeout = httpx.Timeout(config.http_timeout_s, connect=config.http_connect_timeout_s)
        self._extensions = {"timeout": timeout.as_dict(), BEFORE_WRITE: self._before_write}
        # Requests go straight to single-connection httpx transports, one per concurrent
        # request, reused LIFO. An AsyncClient around them would add its request building,
        # auth, redirect and cookie handling (a fifth of the CPU of a request); httpcore's
        # shared pool would scan every connection per request (half the throughput at 32+
        # connections). A free-list of transports is O(1) and keeps connections warm.
        # Direct connections use `SingleConnectionTransport` (HTTP/1.1 on an asyncio
        # protocol, one write per request, httptools parsing); through a proxy, httpx's own
        # transport.
        self._idle: list[httpx.AsyncBaseTransport] = []
        self._transports: list[httpx.AsyncBaseTransport] = []
        self._urls: dict[str, httpx.URL] = {}
        # What an AsyncClient would take from the environment (HTTP(S)_PROXY, NO_PROXY).
        self._proxy = _environment_proxy(base_url)
        burst = config.rate_burst
        self.limiter = AsyncLimiter(burst, burst / rate_per_s) if rate_per_s else None
        self.gate = _Gate()

    def _transport(self) -> httpx.AsyncBaseTransport:
        if self._idle:
            return self._idle.pop()
        # httpx writes headers and body in two sends; without TCP_NODELAY, Nagle holds the
        # body until the peer's delayed ACK (~40 ms) and a keep-alive connection crawls.
        transport: httpx.AsyncBaseTransport
        if self._proxy is None:
            transport = SingleConnectionTransport(socket_options=NODELAY)
        else:
            transport = httpx.AsyncHTTPTransport(
                verify=default_ssl_context(),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                socket_options=NODELAY,
                proxy=self._proxy,
            )
        self._transports.append(transport)
        return transport

    async def post(self, path: str, headers: dict[str, str], body: Any) -> httpx.Response:
        """POST `body` as JSON to `path`; the answer is read in full (its stream closed)."""
        url = self._urls.get(path)
        if url is None:  # parsed once per path: URL parsing is a visible share of a request
            url = self._urls[path] = httpx.URL(self.base_url.rstrip("/") + path)
        # The body encoded as httpx's `json=` would (compact, UTF-8), by orjson.
        request = httpx.Request(
            "POST", url, headers={**headers, "Content-Type": "application/json"},
            content=orjson.dumps(body), extensions=self._extensions,
        )  # fmt: skip
        transport = self._transport()
        try:
            response = await transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
            return response
        finally:
            self._idle.append(transport)

    async def _before_write(self) -> None:
        """Last check before a request is written: a 429 may have paused the provider while
        this one waited for the rate limiter or a new connection."""
        if (paused := self.gate.left()) > self.config.max_retry_wait_s:
            raise ProviderPaused(paused)
        await self.gate.wait()

    # -- subclass API ------------------------------------------------------------------------
    @abstractmethod
    def build(self, item: OutboxItem) -> tuple[str, dict[str, str], dict[str, Any]]:
        """(path, headers, json body) of the request for `item`."""

    @abstractmethod
    def classify(self, response: httpx.Response) -> Attempt:
        """The provider's answer as an attempt outcome (sent, retry, permanent, …)."""

    # -- shared ------------------------------------------------------------------------------
    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.config.backoff_max_s, self.config.backoff_base_s * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)  # "equal jitter": spread, never zero

    async def send(
        self,
        item: OutboxItem,
        already_delivered: AlreadyDelivered | None = None,
        *,
        resend_unknown: bool = True,
    ) -> SendResult:
        """Deliver `item` with bounded retries; never raises for provider/network failures.

        `resend_unknown=False` (Telegram, whose resends delivery records before making
        them): no lookup, and no request after one whose outcome is unknown in this call;
        an `item` already uncertain is sent once, as the resend its caller decided on.
        """
        path, headers, body = self.build(item)
        headers = {"Idempotency-Key": item.key, **headers}
        result = SendResult(key=item.key, provider=self.name, ok=False)
        uncertain = item.uncertain
        attempt = Attempt("retry")
        for n in range(self.config.max_attempts_per_run):
            if uncertain and not self.native_idempotency and not resend_unknown:
                if n > 0:
                    break  # a resend now would be a second unrecorded one
                result.ambiguous_resends += 1
            elif uncertain and not self.native_idempotency:
                if already_delivered is not None:
                    found = already_delivered(item.key)
                    if inspect.isawaitable(found):
                        found = await found
                    if found:
                        result.ok = True
                        result.confirmed_by_lookup = True
                        result.provider_message_id = found if isinstance(found, str) else None
                        return result
                result.ambiguous_resends += 1
            if (paused := self.gate.left()) > self.config.max_retry_wait_s:
                self._deferred(result, paused)
                break
            await self.gate.wait()
            if self.limiter is not None:
                await self.limiter.acquire()
            result.http_attempts += 1
            try:
                response = await self.post(path, headers=headers, body=body)
                attempt = self.classify(response)
                if response.status_code >= 500 and attempt.kind == "retry":
                    # A 5xx does not say the work was not done: a gateway answers 502/504
                    # for a backend that committed, a provider can fail after its write.
                    # Without idempotency a resend needs the care of one after a timeout.
                    attempt.ambiguous = True
            except ProviderPaused as exc:  # a 429 paused the provider before this was written
                result.http_attempts -= 1
                self._deferred(result, exc.seconds)
                break
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # The request never reached the provider: no effect, nothing ambiguous.
                attempt = Attempt("retry", error_code="connect_error", message=repr(exc))
            except httpx.TimeoutException as exc:
                attempt = Attempt("retry", error_code="timeout", message=repr(exc), ambiguous=True)
            except httpx.TransportError as exc:
                attempt = Attempt(
                    "retry", error_code="connection_lost", message=repr(exc), ambiguous=True
                )
            uncertain = uncertain or attempt.ambiguous
            result.ambiguous_attempts += attempt.ambiguous
            if attempt.kind == "sent":
                result.ok = True
                result.provider_message_id = attempt.provider_message_id
                result.replayed = attempt.replayed
                return result
            result.error_code = attempt.error_code
            result.error_message = attempt.message
            if attempt.kind == "permanent":
                result.permanent = True
                result.opt_out = attempt.opt_out
                return result
            if attempt.retry_after_s is not None:
                result.retry_after_s = attempt.retry_after_s
                # Every sender pauses, also for a pause longer than this row may wait.
                self.gate.block(attempt.retry_after_s)
                if attempt.retry_after_s > self.config.max_retry_wait_s:
                    break  # don't hold the claim that long; the next run picks it up
            elif n + 1 < self.config.max_attempts_per_run:
                await asyncio.sleep(self._backoff(n))
        # An answer from the provider (5xx, 429) after an ambiguous attempt does not make
        # that earlier attempt's outcome known, so `uncertain` sticks until a success.
        result.uncertain = uncertain and not self.native_idempotency
        return result

    def _deferred(self, result: SendResult, paused: float) -> None:
        """Back to the outbox without a request, due when the provider's pause is over."""
        result.error_code = result.error_code or "rate_limited"
        result.error_message = result.error_message or (
            f"{self.name} asked to wait {paused:.1f} s (Retry-After)"
        )
        result.retry_after_s = paused
        result.deferred = True

    async def aclose(self) -> None:
        for transport in self._transports:
            await transport.aclose()
        self._transports.clear()
        self._idle.clear()
