"""ClickHouse's HTTP interface served from the embedded engine: a TEST STAND-IN for
clickhouse-server, never a product feature (see the package doc).

What it speaks (https://clickhouse.com/docs/en/interfaces/http), enough for
clickhouse-connect's HTTP client and dbt-clickhouse:

- `GET /` and `GET /ping` → `Ok.`; queries by `GET /?query=…` (run with readonly=2, as
  the server does) or `POST /` with the query in the `query` URL parameter, the body,
  or the parameter followed by the body (joined by a newline, as the server does);
- `INSERT … FORMAT <fmt>` followed by data in any input format the engine reads
  (clickhouse-connect sends Native; Arrow, RowBinary, CSV… work the same), handed to
  the engine's streaming insert; request bodies plain, chunked, or compressed
  (`Content-Encoding: lz4 | zstd | gzip | deflate`);
- `database`, `default_format`, `query_id`, `param_<name>` (server-side query
  parameters) and every other URL parameter as a setting of this query only;
- `session_id` (+ `session_timeout`, `session_check`): one engine session per id, so
  `SET`, `USE` and temporary tables last between requests; a session used by two
  requests at once answers SESSION_IS_LOCKED, as the server does;
- authentication by Basic auth, `X-ClickHouse-User`/`X-ClickHouse-Key` or
  `user`/`password` parameters, checked against one configured user;
- responses with `X-ClickHouse-Query-Id`, `-Format`, `-Timezone`, `-Summary` and
  `-Server-Display-Name`, compressed when the client asks (`enable_http_compression=1`
  and `Accept-Encoding`: lz4, zstd, gzip, deflate); errors as HTTP 4xx/5xx with
  `X-ClickHouse-Exception-Code` and ClickHouse's own `Code: N. DB::Exception: …` text,
  which clients raise.

Not spoken: ClickHouse's native block compression (`compress`/`decompress`=1),
external data (multipart forms), progress headers, roles and quotas, result streaming
(each result is produced whole, then sent).
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlsplit

import chdb
import lz4.frame

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

# URL parameters that shape the request rather than set a setting of the query.
TRANSPORT_PARAMS = frozenset(
    {
        "query", "database", "default_format", "session_id", "session_timeout",
        "session_check", "query_id", "quota_key", "user", "password", "buffer_size",
        "wait_end_of_query", "client_protocol_version", "role", "compress", "decompress",
        "stacktrace",
    }
)  # fmt: skip
SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# `INSERT INTO t (cols) [SETTINGS …] FORMAT Fmt`, then the data after one line break.
INSERT_WITH_DATA = re.compile(
    rb"^\s*(?P<stmt>INSERT\s+INTO\s.*?)\s+FORMAT\s+(?P<fmt>[A-Za-z0-9_]+)[ \t]*(?:\r?\n)?",
    re.IGNORECASE | re.DOTALL,
)
TRAILING_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.IGNORECASE)
# Statements that answer with a result set (and so an X-ClickHouse-Format header).
RESULT_STATEMENT = re.compile(
    r"^\s*(?:\(|SELECT\b|WITH\b|SHOW\b|DESC\b|DESCRIBE\b|EXISTS\b|EXPLAIN\b|CHECK\b)",
    re.IGNORECASE,
)
LEADING_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*\n|/\*.*?\*/)*", re.DOTALL)
ERROR_CODE = re.compile(r"Code: (\d+)\.")
# The HTTP statuses clickhouse-server answers for these error codes; 500 otherwise.
HTTP_STATUS_OF_CODE = {
    62: 400, 27: 400, 36: 400, 47: 404, 60: 404, 81: 404, 115: 404, 164: 403, 497: 403,
    516: 403, 372: 404, 373: 409, 159: 504,
}  # fmt: skip
RESPONSE_ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "lz4": lz4.frame.compress,
    "zstd": zstd.compress,
    "gzip": gzip.compress,
    "deflate": zlib.compress,
}
REQUEST_DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "lz4": lz4.frame.decompress,
    "zstd": zstd.decompress,
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
}


class RequestError(Exception):
    """A request refused with the code and name clickhouse-server would use."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(f"Code: {code}. DB::Exception: {message}. ({name})")
        self.code = code


@dataclass
class Session:
    """One engine session (a chDB connection) kept between requests by `session_id`."""

    connection: Any
    timeout: float
    last_used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Outcome:
    body: bytes
    fmt: str | None
    summary: dict[str, str]


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


class Engine:
    """The embedded engine on one data directory and the sessions opened on it."""

    def __init__(self, path: str, *, user: str = "default", password: str = "") -> None:
        self.path = path
        self.user = user
        self.password = password
        # Keeps the engine (and its directory lock) open while no request runs.
        self._root = chdb.connect(path)
        self.version = self._scalar("SELECT version()")
        self.timezone = self._scalar("SELECT timezone()")
        self._sessions: dict[str, Session] = {}
        self._sessions_lock = threading.Lock()

    def _scalar(self, sql: str) -> str:
        return self._root.query(sql, "TabSeparated").bytes().decode().strip()

    def close(self) -> None:
        with self._sessions_lock:
            for session in self._sessions.values():
                session.connection.close()
            self._sessions.clear()
        self._root.close()

    def _expire_sessions(self) -> None:
        now = time.monotonic()
        with self._sessions_lock:
            for key, session in list(self._sessions.items()):
                if now - session.last_used > session.timeout and session.lock.acquire(False):
                    del self._sessions[key]
                    session.connection.close()
                    session.lock.release()

    @contextmanager
    def connection(self, params: dict[str, str]) -> Iterator[tuple[Any, bool]]:
        """(connection, is_session) for one request: the session's, or a fresh one."""
        session_id = params.get("session_id")
        if not session_id:
            connection = chdb.connect(self.path)
            try:
                yield connection, False
            finally:
                connection.close()
            return
        self._expire_sessions()
        timeout = float(params.get("session_timeout") or 60)
        with self._sessions_lock:
            session = self._sessions.get(session_id)
            if session is None:
                if params.get("session_check") == "1":
                    raise RequestError(372, "SESSION_NOT_FOUND", f"Session {session_id} not found")
                session = Session(chdb.connect(self.path), timeout)
                self._sessions[session_id] = session
        if not session.lock.acquire(blocking=False):
            raise RequestError(
                373, "SESSION_IS_LOCKED", f"Session {session_id} is locked by a concurrent client"
            )
        try:
            session.timeout = timeout
            yield session.connection, True
        finally:
            session.last_used = time.monotonic()
            session.lock.release()

    def execute(self, params: dict[str, str], body: bytes, *, readonly: bool) -> Outcome:
        """Run one request's statement the way clickhouse-server's HTTP handler does."""
        head = params.get("query", "").encode()
        text = head + b"\n" + body if head and body else head or body
        if not text.strip():
            raise RequestError(62, "SYNTAX_ERROR", "Empty query")
        settings = {
            key: value
            for key, value in params.items()
            if key not in TRANSPORT_PARAMS and not key.startswith("param_")
        }
        if readonly and "readonly" not in settings:
            settings["readonly"] = "2"
        for key in settings:
            if not SETTING_NAME.match(key):
                raise RequestError(115, "UNKNOWN_SETTING", f"Setting {key} is neither a builtin")
        query_params = {k[len("param_") :]: v for k, v in params.items() if k.startswith("param_")}
        database = params.get("database")
        with self.connection(params) as (connection, in_session):
            restore = self._snapshot(connection, settings) if in_session and settings else None
            previous_db = self._current_db(connection) if in_session and database else None
            try:
                if database:
                    connection.query(f"USE {quote_identifier(database)}")
                if settings:
                    # readonly last: it forbids changing the settings after it.
                    ordered = sorted(settings.items(), key=lambda kv: kv[0] == "readonly")
                    connection.query(
                        "SET " + ", ".join(f"{k} = {quote_string(v)}" for k, v in ordered)
                    )
                return self._run(connection, text, params, query_params)
            finally:
                if restore:
                    restore()
                if previous_db:
                    connection.query(f"USE {quote_identifier(previous_db)}")

    def _run(
        self, connection: Any, text: bytes, params: dict[str, str], query_params: dict[str, str]
    ) -> Outcome:
        insert = INSERT_WITH_DATA.match(text[:65536])
        if insert:
            data = text[insert.end() :]
            with connection.send_insert(insert["stmt"].decode(), insert["fmt"].decode()) as sink:
                if data:
                    sink.append(data)
                result = sink.finish()
            return Outcome(b"", None, self._summary(result))
        sql = text.decode()
        trailing = TRAILING_FORMAT.search(sql)
        fmt = trailing.group(1) if trailing else params.get("default_format") or "TabSeparated"
        result = connection.query(sql, fmt, params=query_params or None)
        produces_rows = bool(RESULT_STATEMENT.match(LEADING_COMMENTS.sub("", sql, count=1)))
        return Outcome(result.bytes() or b"", fmt if produces_rows else None, self._summary(result))

    @staticmethod
    def _summary(result: Any) -> dict[str, str]:
        def number(name: str) -> str:
            value = getattr(result, name, 0)
            return str(int(value() if callable(value) else value or 0))

        elapsed = getattr(result, "elapsed", 0)
        elapsed = elapsed() if callable(elapsed) else elapsed or 0
        return {
            "read_rows": number("rows_read"),
            "read_bytes": number("bytes_read"),
            "written_rows": number("rows_written"),
            "written_bytes": number("bytes_written"),
            "total_rows_to_read": "0",
            "elapsed_ns": str(int(float(elapsed) * 1e9)),
        }

    @staticmethod
    def _current_db(connection: Any) -> str:
        return connection.query("SELECT currentDatabase()", "TabSeparated").bytes().decode().strip()

    @staticmethod
    def _snapshot(connection: Any, settings: dict[str, str]) -> Callable[[], None]:
        """Read the session's values of `settings`; the returned call puts them back, so
        URL settings last one query, as on the server."""
        names = ", ".join(quote_string(k) for k in settings)
        rows = connection.query(
            f"SELECT name, value, changed FROM system.settings WHERE name IN ({names})",
            "JSONEachRow",
        ).bytes()
        before = {}
        for line in rows.splitlines():
            row = json.loads(line)
            before[row["name"]] = (row["value"], bool(row["changed"]))

        def restore() -> None:
            # readonly first: while it is set, other settings cannot be changed back.
            for name in sorted(before, key=lambda n: n != "readonly"):
                value, changed = before[name]
                literal = quote_string(value) if changed else "DEFAULT"
                connection.query(f"SET {name} = {literal}")

        return restore


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StandinServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request goes to the query log instead

    def do_GET(self) -> None:
        self._handle(readonly=True)

    def do_POST(self) -> None:
        self._handle(readonly=False)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authenticate(self, params: dict[str, str]) -> None:
        user = self.headers.get("X-ClickHouse-User") or params.get("user")
        password = self.headers.get("X-ClickHouse-Key") or params.get("password") or ""
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        user = user or "default"
        engine = self.server.engine
        if (user, password) != (engine.user, engine.password):
            raise RequestError(
                516,
                "AUTHENTICATION_FAILED",
                f"{user}: Authentication failed: password is incorrect, or there is no user "
                "with such name",
            )

    def _handle(self, *, readonly: bool) -> None:
        started = time.perf_counter()
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        body = self._read_body() if self.command == "POST" else b""
        if url.path == "/ping" or (url.path == "/" and not body and "query" not in params):
            self._send(200, b"Ok.\n", {})
            return
        query_id = params.get("query_id") or str(uuid.uuid4())
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self.server.engine.timezone,
            "X-ClickHouse-Server-Display-Name": "clickhouse-http-standin",
        }
        status, text = 200, ""
        try:
            self._authenticate(params)
            if params.get("compress") == "1" or params.get("decompress") == "1":
                raise RequestError(48, "NOT_IMPLEMENTED", "No ClickHouse block compression here")
            encoding = self.headers.get("Content-Encoding", "").lower()
            if encoding and encoding != "identity":
                if encoding not in REQUEST_DECODERS:
                    raise RequestError(
                        48, "NOT_IMPLEMENTED", f"Unknown Content-Encoding {encoding}"
                    )
                body = REQUEST_DECODERS[encoding](body)
            text = (params.get("query", "") + " " + body[:200].decode("utf-8", "replace"))[:300]
            outcome = self.server.engine.execute(params, body, readonly=readonly)
            payload = outcome.body
            if outcome.fmt:
                headers["X-ClickHouse-Format"] = outcome.fmt
            headers["X-ClickHouse-Summary"] = json.dumps(outcome.summary)
            payload = self._encode(payload, params, headers)
        except Exception as ex:  # every failure goes back as ClickHouse's error text
            message = str(ex)
            start = message.find("Code: ")
            message = message[start:] if start >= 0 else f"Code: 1001. DB::Exception: {message}"
            code_match = ERROR_CODE.match(message)
            code = int(code_match.group(1)) if code_match else 1001
            status = HTTP_STATUS_OF_CODE.get(code, 500)
            headers["X-ClickHouse-Exception-Code"] = str(code)
            payload = f"{message.strip()} (version {self.server.engine.version})\n".encode()
        self._send(status, payload, headers)
        self.server.log(status, time.perf_counter() - started, text or params.get("query", ""))

    def _encode(self, payload: bytes, params: dict[str, str], headers: dict[str, str]) -> bytes:
        if params.get("enable_http_compression") != "1" or not payload:
            return payload
        accepted = [e.strip() for e in self.headers.get("Accept-Encoding", "").split(",")]
        for encoding in accepted:
            if encoding in RESPONSE_ENCODERS:
                headers["Content-Encoding"] = encoding
                return RESPONSE_ENCODERS[encoding](payload)
        return payload

    def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        content_type = "text/plain; charset=UTF-8"
        if status == 200 and headers.get("X-ClickHouse-Format") not in (None, "TabSeparated"):
            content_type = "application/octet-stream"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Keep-Alive", "timeout=10")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


class StandinServer(ThreadingHTTPServer):
    """The HTTP server, one thread per connection, over one `Engine`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], engine: Engine, log: TextIO | None) -> None:
        super().__init__(address, Handler)
        self.engine = engine
        self._log = log
        self._log_lock = threading.Lock()

    def log(self, status: int, seconds: float, query: str) -> None:
        if self._log is None:
            return
        # Binary insert data after the statement is not for a log line.
        line = " ".join(re.split(r"[^\t\n\r\x20-\x7e\u00a0-\uffff]", query, maxsplit=1)[0].split())
        with self._log_lock:
            self._log.write(f"{status} {seconds * 1000:.1f}ms {line}\n")
            self._log.flush()


def serve(
    path: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    user: str = "default",
    password: str = "",
    log: TextIO | None = None,
    on_ready: Callable[[StandinServer], None] | None = None,
) -> None:
    """Serve until the server's `shutdown()`; the engine closes on the way out.

    `on_ready(server)` is called once the socket listens (its port:
    `server.server_address[1]`).
    """
    path.mkdir(parents=True, exist_ok=True)
    engine = Engine(str(path), user=user, password=password)
    server = StandinServer((host, port), engine, log)
    try:
        if on_ready:
            on_ready(server)
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        engine.close()
