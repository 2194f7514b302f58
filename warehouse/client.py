"""One way to reach ClickHouse, whatever the DSN says.

`chdb:///abs/dir` opens the embedded engine in this process; `http(s)://…` talks to a
server. The embedded engine takes an exclusive lock on its directory, and a process
can have one directory open at a time, so clients are short-lived: open with
`connect()`, close when the block ends.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from warehouse.config import redact_dsn


class WarehouseError(RuntimeError):
    """The warehouse could not be reached or opened."""


class WarehouseLockedError(WarehouseError):
    """The embedded warehouse directory is held by another process."""

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"process {pid}" if pid else "another process"
        super().__init__(
            f"The embedded warehouse at {path} is locked by {holder}. The embedded engine "
            "allows one process per data directory: stop that process (a `revisit` command, "
            "`dagster dev`, a dbt run), or point REVISIT_WAREHOUSE_DSN at a ClickHouse server "
            "(http://user:pass@host:8123/db) to share the warehouse between processes."
        )
        self.path = path
        self.pid = pid


@dataclass(frozen=True)
class WarehouseTarget:
    """A parsed warehouse DSN."""

    kind: Literal["embedded", "server"]
    path: Path | None = None
    host: str = "localhost"
    port: int = 8123
    username: str = "default"
    password: str = ""
    database: str = "default"
    secure: bool = False

    @property
    def display(self) -> str:
        """The DSN without its password, for logs and summaries."""
        if self.kind == "embedded":
            return f"chdb://{self.path}"
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{self.username}@{self.host}:{self.port}/{self.database}"


def parse_dsn(dsn: str) -> WarehouseTarget:
    """`chdb:///abs/dir` or `http(s)://user:pass@host:port/db` → WarehouseTarget."""
    parsed = urlparse(dsn)
    if parsed.scheme == "chdb":
        location = unquote(parsed.netloc + parsed.path)
        if not location or location in ("memory", ":memory:"):
            raise WarehouseError(
                f"Warehouse DSN {redact_dsn(dsn)!r}: give the data directory, chdb:///abs/dir"
            )
        return WarehouseTarget(kind="embedded", path=Path(location).expanduser().resolve())
    if parsed.scheme in ("http", "https"):
        secure = parsed.scheme == "https"
        return WarehouseTarget(
            kind="server",
            host=parsed.hostname or "localhost",
            port=parsed.port or (8443 if secure else 8123),
            username=unquote(parsed.username or "default"),
            password=unquote(parsed.password or ""),
            database=unquote(parsed.path.strip("/")) or "default",
            secure=secure,
        )
    raise WarehouseError(
        f"Warehouse DSN {redact_dsn(dsn)!r} is not understood: use chdb:///abs/dir (embedded) "
        "or http(s)://user:pass@host:8123/db (ClickHouse server)."
    )


def lock_holder(path: Path) -> int | None:
    """PID of the other process holding the embedded directory, or None when it is free.

    ClickHouse keeps an flock on `<dir>/status` while the engine is open and writes its
    PID there; our own process holding it does not count.
    """
    status = path / "status"
    if not status.exists():
        return None
    try:
        pid = int(status.read_text().split("PID:", 1)[1].split()[0])
    except (IndexError, ValueError, OSError):
        pid = None
    if pid == os.getpid():
        return None
    with open(status, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as ex:
            if ex.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return pid or -1
            raise
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def _open(target: WarehouseTarget, settings: dict[str, Any] | None) -> Client:
    if target.kind == "server":
        try:
            return clickhouse_connect.get_client(
                host=target.host,
                port=target.port,
                username=target.username,
                password=target.password,
                database=target.database,
                interface="https" if target.secure else "http",
                settings=settings or {},
                # No session: loaders share one client between threads (a CRM folder's
                # files load in parallel), and a session admits one query at a time.
                # Nothing here relies on session state (SET, temporary tables).
                autogenerate_session_id=False,
            )
        except Exception as ex:
            raise WarehouseError(f"Cannot reach ClickHouse at {target.display}: {ex}") from ex
    assert target.path is not None
    target.path.mkdir(parents=True, exist_ok=True)
    holder = lock_holder(target.path)
    if holder:
        raise WarehouseLockedError(target.path, holder)
    try:
        return clickhouse_connect.get_client(
            interface="chdb", path=str(target.path), settings=settings or {}
        )
    except Exception as ex:
        holder = lock_holder(target.path)
        if holder:
            raise WarehouseLockedError(target.path, holder) from ex
        if "already initialized" in str(ex):
            raise WarehouseError(
                f"This process already has another embedded warehouse open; close its "
                f"clients before opening {target.path}."
            ) from ex
        raise WarehouseError(f"Cannot open the embedded warehouse at {target.path}: {ex}") from ex


@contextmanager
def connect(dsn: str, settings: dict[str, Any] | None = None) -> Iterator[Client]:
    """A clickhouse-connect client for the DSN, closed when the block ends."""
    client = _open(parse_dsn(dsn), settings)
    try:
        yield client
    finally:
        client.close()
