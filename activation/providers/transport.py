"""A single-connection httpx transport: HTTP/1.1 on an asyncio protocol, parsed by httptools.

httpx's own `AsyncHTTPTransport` runs httpcore on its anyio backend: per request a
connection-pool scan, anyio locks and cancel scopes (each asking sniffio which event loop
runs), trace hooks, the request written in two socket sends (headers, then body, waking the
server twice), and h11 — a pure-Python HTTP state machine costing about as much CPU again as
the rest of a request. At delivery's rates the client's CPU per request is the throughput
limit, so `SingleConnectionTransport` keeps httpx's API and exceptions and does the wire work
leanly: the request (whose headers httpx has already normalised) is serialised and checked
against the HTTP/1.1 grammar, leaves in one write, and the answer is parsed by httptools
(llhttp, the C parser uvicorn and Node.js use) straight from the protocol's `data_received`.

Requests and answers stay httpx objects; failures are raised as the httpx exceptions
`AsyncHTTPTransport` raises (`ConnectError`/`ConnectTimeout` when nothing was sent,
`ReadTimeout`, `ReadError`, `RemoteProtocolError` after the request went out,
`LocalProtocolError`, `UnsupportedProtocol`), so callers cannot tell the two apart; the
read timeout bounds the wait for the whole answer (httpx's: each read of it), the same for
the small answers providers send. A keep-alive connection the server closed while idle is
replaced before the next request.

It serves one request at a time (the caller keeps one transport per concurrent request),
requests of any method but HEAD (a response parser cannot tell that answer has no body),
only the asyncio event loop (delivery runs there) and direct connections; for a proxy,
`Provider` uses httpx's transport.
"""

from __future__ import annotations

import asyncio
import functools
import re
import select
import ssl
from collections.abc import Iterable
from typing import Any

import httptools
import httpx

SocketOption = tuple[int, int, int]
# Request extension: an async callable awaited once the connection is ready, right before
# the request is written (connecting takes time: delivery checks a provider's Retry-After
# pause there, not only before connecting). httpx's own transport ignores it.
BEFORE_WRITE = "revisit.before_write"
NO_ANSWER = "Server disconnected without sending a response."  # httpcore's words

# Request line and header lines per RFC 9112 (token names; no CR, LF or NUL in a value):
# httpx encodes headers but does not reject line breaks in them (h11 did).
_REQUEST_LINE = re.compile(rb"[A-Z]+ [\x21-\x7e]+ HTTP/1\.1\r\n")
_HEADER_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+: [^\x00\r\n]*\r\n")


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context (CA bundle, `SSL_CERT_FILE`/`SSL_CERT_DIR`), built
    once per process and only when a TLS connection is made: loading the bundle costs
    ~50 ms, a visible share of a short delivery run against plain-HTTP endpoints."""
    return httpx.create_ssl_context()


def _readable(sock: Any) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class _Answer:
    """The response being received: status, headers, body chunks."""

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.reason = b""
        self.status = 0
        self.http_version = b"HTTP/1.1"
        self.headers_done = False


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: feeds received bytes to httptools, one answer at a time."""

    def __init__(self, origin: tuple[bytes, bytes, int]) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.keep_alive = False
        self._parser = httptools.HttpResponseParser(self)
        self._answer = _Answer()
        self._waiter: asyncio.Future[_Answer] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes on an idle connection: it cannot be reused
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("unexpected protocol upgrade"))
            self.close()
        except httptools.HttpParserError as exc:  # the parser cannot go on: neither can we
            self._fail(httpx.RemoteProtocolError(f"malformed answer: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        answer = self._answer
        names = {name.lower() for name, _ in answer.headers}
        if answer.headers_done and not names & {b"content-length", b"transfer-encoding"}:
            self._finish(keep_alive=False)  # an answer delimited by the connection's end
        elif answer.headers_done:
            self._fail(httpx.RemoteProtocolError("Server disconnected during the response."))
        else:
            self._fail(httpx.RemoteProtocolError(NO_ANSWER))
        self.closed = True
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is not None:
            self._fail(httpx.ReadError(str(exc) or type(exc).__name__))
        else:
            self._fail(httpx.RemoteProtocolError(NO_ANSWER))

    # -- httptools callbacks ---------------------------------------------------------------
    def on_status(self, reason: bytes) -> None:
        self._answer.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._answer.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._answer.status = self._parser.get_status_code()
        self._answer.http_version = b"HTTP/" + self._parser.get_http_version().encode()
        self._answer.headers_done = True

    def on_body(self, body: bytes) -> None:
        self._answer.body.append(body)

    def on_message_complete(self) -> None:
        if self._answer.status < 200:  # 1xx: the final answer follows
            self._answer = _Answer()
            return
        self._finish(keep_alive=self._parser.should_keep_alive())

    # -- requests ---------------------------------------------------------------------------
    def _finish(self, *, keep_alive: bool) -> None:
        waiter, self._waiter = self._waiter, None
        self.keep_alive = keep_alive
        if waiter is not None and not waiter.done():
            waiter.set_result(self._answer)

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def reusable_for(self, origin: tuple[bytes, bytes, int]) -> bool:
        """Same origin, kept alive, and not closed (or sent to) by the server while idle."""
        if origin != self.origin or self.closed or not self.keep_alive:
            return False
        assert self.transport is not None
        if self.transport.is_closing():
            return False
        # A close the event loop has not processed yet: the socket is readable.
        sock = self.transport.get_extra_info("socket")
        return sock is not None and not _readable(sock)

    async def exchange(self, request: bytes, timeout: float | None) -> _Answer:
        """Send one request and wait (at most `timeout` s) for its answer."""
        assert self.transport is not None and self._waiter is None
        self._answer = _Answer()
        self.keep_alive = False
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        try:
            async with asyncio.timeout(timeout):
                return await self._waiter
        except TimeoutError:
            raise httpx.ReadTimeout("timed out waiting for the answer") from None
        finally:
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _serialize(request: httpx.Request, body: bytes) -> bytes:
    """The request as HTTP/1.1 bytes (httpx has set Host and the body's framing headers)."""
    start = b"%s %s HTTP/1.1\r\n" % (request.method.encode("ascii"), request.url.raw_path)
    lines = [b"%s: %s\r\n" % pair for pair in request.headers.raw]
    if not _REQUEST_LINE.fullmatch(start) or not all(map(_HEADER_LINE.fullmatch, lines)):
        raise httpx.LocalProtocolError("request line or a header is not valid HTTP/1.1")
    head = b"".join((start, *lines, b"\r\n"))
    if request.headers.get("transfer-encoding", "").lower() == "chunked":
        return head + (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n")
    return head + body


class SingleConnectionTransport(httpx.AsyncBaseTransport):
    """An httpx transport with one keep-alive HTTP/1.1 connection (one request at a time).

    `ssl_context` verifies TLS peers; by default `default_ssl_context()`.
    """

    def __init__(
        self, ssl_context: ssl.SSLContext | None = None,
        socket_options: Iterable[SocketOption] = (),
    ) -> None:  # fmt: skip
        self._ssl_context = ssl_context
        self._socket_options = list(socket_options)
        self._connection: _Connection | None = None

    async def _connect(
        self, origin: tuple[bytes, bytes, int], timeout: float | None
    ) -> _Connection:
        scheme, raw_host, port = origin
        host = raw_host.decode("ascii")
        tls = scheme == b"https"
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(origin), host, port,
                    ssl=(self._ssl_context or default_ssl_context()) if tls else None,
                    server_hostname=host if tls else None,  # SNI and certificate check
                )  # fmt: skip
        except TimeoutError:
            raise httpx.ConnectTimeout("timed out connecting") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        assert connection.transport is not None
        sock = connection.transport.get_extra_info("socket")
        for option in self._socket_options:
            sock.setsockopt(*option)
        return connection

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request`; the answer comes back read in full."""
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol {url}")
        if request.method == "HEAD":  # the parser cannot know its answer has no body
            raise httpx.UnsupportedProtocol("HEAD requests are not supported by this transport")
        origin = (url.raw_scheme, url.raw_host, url.port or (443 if url.scheme == "https" else 80))
        timeouts = request.extensions.get("timeout", {})
        wire = _serialize(request, await request.aread())

        connection = self._connection
        if connection is not None and not connection.reusable_for(origin):
            connection.close()
            connection = self._connection = None
        if connection is None:
            connection = await self._connect(origin, timeouts.get("connect"))
            self._connection = connection
        if (before_write := request.extensions.get(BEFORE_WRITE)) is not None:
            await before_write()  # may raise: nothing was sent, the connection stays usable
        try:
            answer = await connection.exchange(wire, timeouts.get("read"))
        except BaseException:
            # Any failure (also cancellation) leaves the connection in an unknown state.
            self._connection = None
            connection.close()
            raise
        if not connection.keep_alive:  # `Connection: close`, or an answer ended by the close
            self._connection = None
            connection.close()
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            content=b"".join(answer.body),
            extensions={"http_version": answer.http_version, "reason_phrase": answer.reason},
            request=request,
        )

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
