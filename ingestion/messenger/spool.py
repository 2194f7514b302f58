"""The durable webhook spool: append-only segment files with group commit.

Layout (``<spool root>`` is ``settings.spool_dir / "webhooks"``)::

    <spool root>/
      wh-<opened UTC>-<pid>-<nonce>-<n>.open.jsonl     being written by a live process
      wh-<opened UTC>-<pid>-<nonce>-<n>.closed.jsonl   complete, waiting for the loader
      loaded/wh-....closed.jsonl                       loaded into the warehouse (kept for audit)

A segment's *id* is its name without the ``.open.jsonl`` / ``.closed.jsonl`` suffix, e.g.
``wh-20250101T120000123456Z-4242-9f3a-000001``; ids sort in opening order and are unique
across processes and restarts (pid + random nonce). The loader uses the id as batch id.

Record format: one JSON object per line (UTF-8, ``\\n`` terminated), written in one piece::

    {"provider":"whatsapp","received_at_ms":1735732800123,"crc32":123456789,"body_b64":"eyJ..."}

- ``provider``: ``whatsapp`` | ``telegram`` | ``sms`` (which endpoint accepted it);
- ``received_at_ms``: receive time, Unix epoch milliseconds (UTC);
- ``body_b64``: the raw request body exactly as signed, standard base64 — so any bytes
  survive, and the signature could be re-checked against it later;
- ``crc32``: ``zlib.crc32`` of the decoded body, to tell a torn or corrupted record from
  a good one.

Durability contract: :meth:`Spool.append` returns only after the record has been written and
``fdatasync``-ed (and, for a new segment, after its directory entry was fsynced), so an
acknowledged webhook survives a crash of the process or the machine. Concurrent appends
share one write + fsync (group commit): while one batch is being synced, new records queue
up and go out together in the next one.

Segments rotate when they reach ``max_bytes`` (checked after each group commit, so a
segment can exceed it by one batch) or ``max_age_s``; rotation and clean shutdown
*close* a segment (fsync, rename ``.open`` → ``.closed``, fsync the directory). A process
holds an exclusive ``flock`` on its open segment, so :func:`recover_open_segments` can tell
a live writer's segment (lock held) from a dead one's; a dead one is truncated after its
last valid record (a torn tail was never acknowledged) and closed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fcntl
import json
import logging
import os
import secrets
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

OPEN_SUFFIX = ".open.jsonl"
CLOSED_SUFFIX = ".closed.jsonl"
LOADED_DIR = "loaded"
PROVIDERS = ("whatsapp", "telegram", "sms")

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_AGE_S = 60.0


def segment_id(path: Path) -> str:
    """The segment's id: its file name without the state suffix."""
    name = path.name
    for suffix in (OPEN_SUFFIX, CLOSED_SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    raise ValueError(f"{path} is not a spool segment (*{OPEN_SUFFIX} or *{CLOSED_SUFFIX})")


def encode_record(provider: str, body: bytes, received_at_ms: int) -> bytes:
    """One spool line for a request body (the hot path: no json.dumps, only C helpers)."""
    return b'{"provider":"%s","received_at_ms":%d,"crc32":%d,"body_b64":"%s"}\n' % (
        provider.encode(),
        received_at_ms,
        zlib.crc32(body),
        base64.b64encode(body),
    )


@dataclass(frozen=True)
class SpoolRecord:
    """A decoded spool line. `line` is its 1-based line number in the segment."""

    line: int
    provider: str
    received_at_ms: int
    body: bytes


class SpoolRecordError(ValueError):
    """A spool line that is not a valid record (torn, corrupted or hand-edited)."""


def decode_record(raw: bytes, line: int) -> SpoolRecord:
    """Parse one spool line; raises SpoolRecordError naming what is wrong."""
    if not raw.endswith(b"\n"):
        raise SpoolRecordError("record is not newline-terminated (torn write)")
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise SpoolRecordError(f"record is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise SpoolRecordError("record is not a JSON object")
    provider = obj.get("provider")
    if provider not in PROVIDERS:
        raise SpoolRecordError(f"unknown provider {provider!r}")
    received = obj.get("received_at_ms")
    if not isinstance(received, int) or isinstance(received, bool):
        raise SpoolRecordError("received_at_ms is missing or not an integer")
    try:
        body = base64.b64decode(obj.get("body_b64", ""), validate=True)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise SpoolRecordError(f"body_b64 is not base64: {exc}") from None
    if zlib.crc32(body) != obj.get("crc32"):
        raise SpoolRecordError("crc32 does not match the body (corrupted record)")
    return SpoolRecord(line=line, provider=provider, received_at_ms=received, body=body)


def iter_lines(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset after the line, raw line) for every line of a segment."""
    offset = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            offset += len(raw)
            yield number, offset, raw


def read_segment(path: Path) -> Iterator[SpoolRecord | tuple[int, bytes, SpoolRecordError]]:
    """Every line of a segment: a SpoolRecord, or (line, raw bytes, error) for a bad one."""
    for number, _, raw in iter_lines(path):
        try:
            yield decode_record(raw, number)
        except SpoolRecordError as exc:
            yield number, raw, exc


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def recover_open_segments(root: Path) -> list[Path]:
    """Close the open segments of dead writers; return the closed paths.

    A segment whose `flock` is held belongs to a live process and is left alone, so this is
    safe to call at any time (receiver start-up, before every load). A dead writer's segment
    is cut after its last valid record — records after it were never acknowledged — then
    fsynced and renamed to ``.closed.jsonl``; an empty one is deleted.
    """
    closed: list[Path] = []
    if not root.is_dir():
        return closed
    for path in sorted(root.glob(f"*{OPEN_SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:  # closed by its owner meanwhile
            continue
        try:
            if not _try_lock(fd):
                continue
            if not path.exists():  # another recoverer finished it between glob and lock
                continue
            good_end = 0
            for number, end, raw in iter_lines(path):
                try:
                    decode_record(raw, number)
                except SpoolRecordError:
                    continue
                good_end = end
            size = os.fstat(fd).st_size
            if good_end < size:
                log.warning(
                    "spool segment %s: cut a torn tail of %d bytes (unacknowledged writes)",
                    path.name,
                    size - good_end,
                )
                os.ftruncate(fd, good_end)
            os.fsync(fd)
            if good_end == 0:
                path.unlink()
            else:
                target = path.with_name(segment_id(path) + CLOSED_SUFFIX)
                os.rename(path, target)
                closed.append(target)
            _fsync_dir(root)
        finally:
            os.close(fd)  # also releases the lock
    return closed


class _Segment:
    """One open segment file; all methods run on the spool's single writer thread."""

    def __init__(self, root: Path, tag: str, number: int) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.id = f"wh-{stamp}-{tag}-{number:06d}"
        self.path = root / f"{self.id}{OPEN_SUFFIX}"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        # The new name must be durable before anything in the file is acknowledged.
        _fsync_dir(root)
        self.opened = time.monotonic()
        self.size = 0
        self.records = 0

    def write(self, data: bytes, count: int) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(self.fd, view)
                view = view[written:]
            os.fdatasync(self.fd)
        except OSError:
            # Nothing of this batch is acknowledged: drop its partial bytes so the next
            # batch does not follow a torn record.
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)
            raise
        self.size += len(data)
        self.records += count

    def close(self) -> Path | None:
        """Rename to closed (or delete when empty); returns the closed path."""
        root = self.path.parent
        try:
            if self.records == 0:
                self.path.unlink()
                return None
            os.fsync(self.fd)
            target = root / f"{self.id}{CLOSED_SUFFIX}"
            os.rename(self.path, target)
            _fsync_dir(root)
            return target
        finally:
            os.close(self.fd)


class Spool:
    """Group-committing appender for one process. Use from one asyncio event loop.

    `start()` recovers dead segments and starts the writer task; `append()` resolves once the
    record is durable; `close()` drains the queue and closes the current segment.
    """

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age_s: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._tag = f"{os.getpid()}-{secrets.token_hex(2)}"
        self._number = 0
        self._segment: _Segment | None = None
        self._lines: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # One thread: file operations are serialized and never block the event loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self.closed_segments: list[Path] = []
        # Group-commit statistics: fsyncs done and records they covered.
        self.batches = 0
        self.records_written = 0

    @property
    def current_segment(self) -> Path | None:
        """Path of the open segment (None before the first record)."""
        return None if self._segment is None else self._segment.path

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        recovered = await loop.run_in_executor(self._executor, recover_open_segments, self.root)
        if recovered:
            log.info("spool: closed %d segment(s) left open by dead processes", len(recovered))
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="spool-writer")

    async def append(self, provider: str, body: bytes, received_at_ms: int | None = None) -> None:
        """Append one request body; returns when it is on disk (fdatasync done)."""
        if self._wakeup is None or self._closing or self._task is None or self._task.done():
            raise RuntimeError("spool is not running")
        if received_at_ms is None:
            received_at_ms = time.time_ns() // 1_000_000
        future = asyncio.get_running_loop().create_future()
        self._lines.append(encode_record(provider, body, received_at_ms))
        self._waiters.append(future)
        self._wakeup.set()
        await future

    async def close(self) -> None:
        """Write what is queued, close the current segment, stop the writer."""
        if self._task is None or self._wakeup is None:
            self._executor.shutdown(wait=True)
            return
        self._closing = True
        self._wakeup.set()
        await self._task
        self._task = None
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=min(1.0, self.max_age_s))
            self._wakeup.clear()
            while self._lines:
                lines, waiters = self._lines, self._waiters
                self._lines, self._waiters = [], []
                try:
                    await loop.run_in_executor(self._executor, self._write, lines)
                except Exception as exc:  # the requests answer 5xx; the provider retries
                    log.exception("spool write failed")
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(exc)
                    continue
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
            segment = self._segment
            if self._closing or (
                segment is not None and time.monotonic() - segment.opened >= self.max_age_s
            ):
                try:
                    await loop.run_in_executor(self._executor, self._rotate)
                except Exception:
                    # The writer must survive: appends would otherwise wait forever. The
                    # segment stays `.open` and is closed by the next recovery.
                    log.exception("spool: closing segment failed")
            if self._closing:
                return

    def _write(self, lines: list[bytes]) -> None:
        if self._segment is None:
            self._number += 1
            self._segment = _Segment(self.root, self._tag, self._number)
        self._segment.write(b"".join(lines), len(lines))
        self.batches += 1
        self.records_written += len(lines)
        if self._segment.size >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        if self._segment is None:
            return
        segment, self._segment = self._segment, None
        closed = segment.close()
        if closed is not None:
            self.closed_segments.append(closed)


def closed_segments(root: Path) -> list[Path]:
    """Closed (not yet loaded) segments in opening order."""
    if not root.is_dir():
        return []
    return sorted(root.glob(f"*{CLOSED_SUFFIX}"))
