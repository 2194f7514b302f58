"""A single-connection httpx transport on httpcore with a plain-asyncio network backend.

httpx's own `AsyncHTTPTransport` runs httpcore on its anyio backend, which opens a cancel
scope (and asks sniffio which event loop runs) for every socket read and write: about a
seventh of the client's CPU per request at delivery's rates. httpcore lets a pool take any
`AsyncNetworkBackend`; `AsyncioBackend` is one on asyncio streams with `asyncio.timeout`.
`SingleConnectionTransport` wraps such a pool as an httpx transport (requests and answers
stay httpx objects, httpcore's exceptions are raised as httpx's, as `AsyncHTTPTransport`
does). It serves only the asyncio event loop (delivery runs there) and direct connections;
for a proxy, `Provider` uses httpx's transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import ssl
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

SocketOption = tuple[int, int, int]


def _readable(sock: Any) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


@contextlib.contextmanager
def _raise_as(timeout: type[Exception], error: type[Exception]) -> Iterator[None]:
    try:
        yield
    except TimeoutError:
        raise timeout() from None
    except (OSError, ssl.SSLError) as exc:
        raise error(exc) from exc


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One TCP (or TLS) connection as asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _raise_as(httpcore.ReadTimeout, httpcore.ReadError):
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        with _raise_as(httpcore.WriteTimeout, httpcore.WriteError):
            self._writer.write(buffer)
            async with asyncio.timeout(timeout):
                await self._writer.drain()

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await self._writer.wait_closed()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        with _raise_as(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # httpcore: is an idle keep-alive connection unusable?
            if self._writer.is_closing() or self._reader.at_eof():
                return True
            sock = self._writer.get_extra_info("socket")
            return sock is not None and _readable(sock)
        names = {
            "ssl_object": "ssl_object",
            "client_addr": "sockname",
            "server_addr": "peername",
            "socket": "socket",
        }
        return self._writer.get_extra_info(names[info]) if info in names else None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on asyncio streams (TCP only)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        with _raise_as(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(local_address, 0) if local_address else None
                )
            sock = writer.get_extra_info("socket")
            for option in socket_options or ():
                sock.setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - providers are TCP endpoints
        raise httpcore.UnsupportedProtocol("unix sockets are not supported by AsyncioBackend")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _as_httpx_error(exc: Exception) -> Exception:
    """httpcore's exception as httpx's class of the same name (httpx mirrors them all)."""
    for cls in type(exc).__mro__:
        mapped = getattr(httpx, cls.__name__, None)
        if isinstance(mapped, type) and issubclass(mapped, httpx.TransportError):
            return mapped(str(exc))
    return exc


class SingleConnectionTransport(httpx.AsyncBaseTransport):
    """An httpx transport with one keep-alive connection on `AsyncioBackend`."""

    def __init__(
        self, ssl_context: ssl.SSLContext, socket_options: Iterable[SocketOption] = ()
    ) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=1,
            max_keepalive_connections=1,
            socket_options=list(socket_options),
            network_backend=AsyncioBackend(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request`; the answer comes back read in full."""
        url = request.url
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,  # type: ignore[arg-type]  # an httpx byte stream
            extensions=request.extensions,
        )
        try:
            answer = await self._pool.handle_async_request(core_request)
            try:
                content = await answer.aread()
            finally:
                await answer.aclose()
        except (
            httpcore.TimeoutException,
            httpcore.NetworkError,
            httpcore.ProtocolError,
            httpcore.UnsupportedProtocol,
        ) as exc:
            raise _as_httpx_error(exc) from exc
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            content=content,
            extensions=answer.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
