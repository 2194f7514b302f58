"""The spool file format, group commit, rotation and crash recovery."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ingestion.messenger.spool import (
    CLOSED_SUFFIX,
    OPEN_SUFFIX,
    Spool,
    SpoolRecord,
    SpoolRecordError,
    closed_segments,
    decode_record,
    encode_record,
    read_segment,
    recover_open_segments,
)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=2048), received=st.integers(min_value=0, max_value=2**48))
def test_records_survive_arbitrary_bytes(body: bytes, received: int) -> None:
    line = encode_record("sms", body, received)
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    record = decode_record(line, 7)
    assert (record.provider, record.received_at_ms, record.body, record.line) == (
        "sms",
        received,
        body,
        7,
    )


def test_corrupted_record_is_detected() -> None:
    line = encode_record("whatsapp", b'{"a": 1}', 1)
    flipped = line.replace(b'"body_b64":"ey', b'"body_b64":"fy')
    for bad in (line[:-1], line[: len(line) // 2], flipped, b"\x00" * 40 + b"\n"):
        try:
            decode_record(bad, 1)
        except SpoolRecordError:
            continue
        raise AssertionError(f"accepted a bad record: {bad!r}")


def _append_all(root: Path, bodies: list[bytes], **kwargs: float) -> Spool:
    async def run() -> Spool:
        spool = Spool(root, **kwargs)  # type: ignore[arg-type]
        await spool.start()
        # Waves of concurrent appends: each wave is one group commit (one batch).
        for start in range(0, len(bodies), 25):
            wave = bodies[start : start + 25]
            await asyncio.gather(*(spool.append("whatsapp", body) for body in wave))
        await spool.close()
        return spool

    return asyncio.run(run())


def _bodies(paths: list[Path]) -> list[bytes]:
    out = []
    for path in paths:
        for item in read_segment(path):
            assert isinstance(item, SpoolRecord)
            out.append(item.body)
    return out


def test_rotation_by_size_keeps_every_record_once(tmp_path: Path) -> None:
    bodies = [b'{"n": %d}' % i for i in range(500)]
    spool = _append_all(tmp_path, bodies, max_bytes=4096)
    closed = closed_segments(tmp_path)
    assert len(closed) > 3
    assert closed == sorted(spool.closed_segments)
    assert sorted(_bodies(closed)) == sorted(bodies)
    assert list(tmp_path.glob(f"*{OPEN_SUFFIX}")) == []


def test_rotation_by_age_closes_an_idle_segment(tmp_path: Path) -> None:
    async def run() -> None:
        spool = Spool(tmp_path, max_age_s=0.2)
        await spool.start()
        await spool.append("sms", b"{}")
        assert spool.current_segment is not None
        for _ in range(100):
            if closed_segments(tmp_path):
                break
            await asyncio.sleep(0.05)
        assert spool.current_segment is None
        await spool.close()

    asyncio.run(run())
    assert len(closed_segments(tmp_path)) == 1


def _write_open_segment(root: Path, name: str, content: bytes) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}{OPEN_SUFFIX}"
    path.write_bytes(content)
    return path


def test_recovery_truncates_a_torn_tail_and_closes(tmp_path: Path) -> None:
    good = [encode_record("whatsapp", b'{"i": %d}' % i, 1000 + i) for i in range(3)]
    torn = encode_record("whatsapp", b'{"i": 99}', 2000)[:25]
    path = _write_open_segment(tmp_path, "wh-dead-1", b"".join(good) + torn)
    zero_tail = _write_open_segment(tmp_path, "wh-dead-2", good[0] + b"\x00" * 512)
    empty = _write_open_segment(tmp_path, "wh-dead-3", torn)

    recovered = recover_open_segments(tmp_path)

    assert [p.name for p in recovered] == [f"wh-dead-1{CLOSED_SUFFIX}", f"wh-dead-2{CLOSED_SUFFIX}"]
    assert not path.exists() and not zero_tail.exists() and not empty.exists()
    assert recovered[0].read_bytes() == b"".join(good)
    assert recovered[1].read_bytes() == good[0]
    assert _bodies(recovered) == [b'{"i": 0}', b'{"i": 1}', b'{"i": 2}', b'{"i": 0}']


def test_recovery_leaves_a_live_writers_segment_alone(tmp_path: Path) -> None:
    content = encode_record("sms", b"{}", 1) + b"partial"
    path = _write_open_segment(tmp_path, "wh-live-1", content)
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert recover_open_segments(tmp_path) == []
        assert path.read_bytes() == content
    finally:
        os.close(fd)
    assert len(recover_open_segments(tmp_path)) == 1


def test_start_recovers_dead_segments_before_writing(tmp_path: Path) -> None:
    old = encode_record("telegram", b'{"update_id": 1}', 5)
    _write_open_segment(tmp_path, "wh-0-dead-1", old + b'{"provider":"tel')
    _append_all(tmp_path, [b'{"update_id": 2}'])
    closed = closed_segments(tmp_path)
    assert len(closed) == 2
    assert sorted(_bodies(closed)) == [b'{"update_id": 1}', b'{"update_id": 2}']
