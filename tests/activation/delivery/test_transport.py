"""SingleConnectionTransport (HTTP/1.1 on an asyncio protocol, httptools parsing): keep-alive,
TLS, reconnects, every way an answer can be framed, and failures raised as the httpx
exceptions the providers classify."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from activation.providers.transport import SingleConnectionTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One HTTP/1.1 request with a Content-Length body (None at EOF)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


def _answer(body: bytes, *, close: bool = False) -> bytes:
    connection = b"connection: close\r\n" if close else b""
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), connection, body)


class Server:
    """An asyncio HTTP/1.1 server on 127.0.0.1 counting connections and requests."""

    def __init__(self, *, requests_per_connection: int | None = None, answer: bool = True):
        self.connections = 0
        self.requests: list[bytes] = []
        self.requests_per_connection = requests_per_connection
        self.answer = answer

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        while (request := await _read_request(reader)) is not None:
            self.requests.append(request)
            served += 1
            if not self.answer:  # the request arrived; the answer is lost
                break
            writer.write(_answer(b'{"n": %d}' % len(self.requests)))
            await writer.drain()
            if served == self.requests_per_connection:
                break  # close an idle keep-alive connection, as servers do
        writer.close()


async def _post(transport: httpx.AsyncBaseTransport, url: str, timeout: float = 5.0):
    request = httpx.Request(
        "POST", url, json={"k": "v"}, extensions={"timeout": httpx.Timeout(timeout).as_dict()}
    )
    return await transport.handle_async_request(request)


def test_keep_alive_and_reconnect_after_the_server_closed_an_idle_connection() -> None:
    async def main() -> None:
        server = Server(requests_per_connection=2)
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        transport = SingleConnectionTransport(ssl.create_default_context())
        try:
            answers = []
            for _ in range(5):
                answers.append(await _post(transport, f"http://127.0.0.1:{port}/x"))
                await asyncio.sleep(0.05)  # let a server-side close arrive while idle
        finally:
            await transport.aclose()
            listener.close()
        assert [a.json()["n"] for a in answers] == [1, 2, 3, 4, 5]
        assert all(a.status_code == 200 for a in answers)
        assert server.connections == 3  # two requests per connection, reused in between
        assert b'{"k":"v"}' in server.requests[0]

    asyncio.run(main())


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_verifies_the_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def main() -> None:
        server = Server()
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=server_context)
        url = f"https://localhost:{listener.sockets[0].getsockname()[1]}/x"
        trusting = SingleConnectionTransport(ssl.create_default_context(cafile=str(cert)))
        default = SingleConnectionTransport(ssl.create_default_context())
        try:
            first = await _post(trusting, url)
            second = await _post(trusting, url)
            with pytest.raises(httpx.ConnectError):  # not signed by a CA it trusts
                await _post(default, url)
        finally:
            await trusting.aclose()
            await default.aclose()
            listener.close()
        assert (first.json(), second.json()) == ({"n": 1}, {"n": 2})
        # Both requests on one connection; the other never got past the TLS handshake.
        assert server.connections == 1 and len(server.requests) == 2

    asyncio.run(main())


def test_failures_are_httpx_exceptions() -> None:
    async def main() -> None:
        lost = Server(answer=False)
        closes = await asyncio.start_server(lost.handle, "127.0.0.1", 0)

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_request(reader)
            await asyncio.sleep(5)
            writer.close()

        hangs = await asyncio.start_server(silent, "127.0.0.1", 0)
        free = await asyncio.start_server(lost.handle, "127.0.0.1", 0)
        free_port = free.sockets[0].getsockname()[1]
        free.close()
        await free.wait_closed()
        transport = SingleConnectionTransport(ssl.create_default_context())
        try:
            with pytest.raises(httpx.ConnectError):
                await _post(transport, f"http://127.0.0.1:{free_port}/x")
            with pytest.raises(httpx.UnsupportedProtocol):
                await _post(transport, f"ftp://127.0.0.1:{free_port}/x")
            port = closes.sockets[0].getsockname()[1]
            with pytest.raises(httpx.RemoteProtocolError):  # request sent, answer lost
                await _post(transport, f"http://127.0.0.1:{port}/x")
            port = hangs.sockets[0].getsockname()[1]
            with pytest.raises(httpx.ReadTimeout):
                await _post(transport, f"http://127.0.0.1:{port}/x", timeout=0.2)
        finally:
            await transport.aclose()
            closes.close()
            hangs.close()

    asyncio.run(main())


class Scripted:
    """Answers the n-th request (on any connection) with `answers[n]`: raw bytes, and whether
    the server closes the connection after it."""

    def __init__(self, answers: list[tuple[bytes, bool]]) -> None:
        self.answers = answers
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        while (request := await _read_request(reader)) is not None:
            answer, close = self.answers[len(self.requests)]
            self.requests.append(request)
            writer.write(answer)
            await writer.drain()
            if close:
                break
        writer.close()


def test_answers_framed_every_way_http_allows() -> None:
    answers = [
        # chunked, with a header repeated on two lines
        (
            b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\nx-a: 1\r\nx-a: 2\r\n\r\n"
            b'4\r\n{"n"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n',
            False,
        ),
        # an informational answer first, then the final one
        (b"HTTP/1.1 100 Continue\r\n\r\n" + _answer(b'{"n": 2}'), False),
        # the server ends the connection after this one
        (_answer(b'{"n": 3}', close=True), True),
        # a body delimited by the connection's end (no length, not chunked)
        (b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"n": 4}', True),
        (_answer(b'{"n": 5}'), False),
    ]

    async def main() -> list[httpx.Response]:
        server = Scripted(answers)
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}/x"
        transport = SingleConnectionTransport()
        try:
            out = [await _post(transport, url) for _ in answers]
        finally:
            await transport.aclose()
            listener.close()
        # 1-2 share a connection, 3 closes it, 4 is read to the end, 5 opens a third one
        assert server.connections == 3
        return out

    answered = asyncio.run(main())
    assert [a.json()["n"] for a in answered] == [1, 2, 3, 4, 5]
    assert answered[0].status_code == 201
    assert answered[0].headers.get_list("x-a") == ["1", "2"]
    assert answered[0].extensions["reason_phrase"] == b"Created"
    assert answered[1].status_code == 200


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    async def main() -> None:
        server = Server()
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}/x"
        transport = SingleConnectionTransport()
        injected = httpx.Request("POST", url, headers={"X-Key": "k\r\nX-Evil: 1"}, json={})
        try:
            with pytest.raises(httpx.LocalProtocolError):
                await transport.handle_async_request(injected)
            assert (await _post(transport, url)).json() == {"n": 1}
        finally:
            await transport.aclose()
            listener.close()
        assert len(server.requests) == 1 and b"X-Evil" not in server.requests[0]

    asyncio.run(main())


def test_a_proxy_from_the_environment_is_used_as_httpx_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from activation.providers import ProvidersConfig, WhatsAppProvider

    config = ProvidersConfig(whatsapp_base_url="https://graph.facebook.com")
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    direct = WhatsAppProvider(config)
    assert isinstance(direct._transport(), SingleConnectionTransport)

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    proxied = WhatsAppProvider(config)
    assert proxied._proxy == "http://proxy.internal:3128"
    assert isinstance(proxied._transport(), httpx.AsyncHTTPTransport)

    monkeypatch.setenv("NO_PROXY", "graph.facebook.com")
    assert WhatsAppProvider(config)._proxy is None


def test_a_malformed_answer_is_a_remote_protocol_error_and_the_connection_is_replaced() -> None:
    answers = [
        (b"HTTP/1.1 200 OK\r\ncontent-length: nope\r\n\r\n{}", False),
        (_answer(b"{}"), False),
    ]

    async def main() -> None:
        server = Scripted(answers)
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}/x"
        transport = SingleConnectionTransport()
        try:
            with pytest.raises(httpx.RemoteProtocolError):
                await _post(transport, url)
            assert (await _post(transport, url)).json() == {}
        finally:
            await transport.aclose()
            listener.close()
        assert server.connections == 2

    asyncio.run(main())
