"""Shared helpers of the synthetic generator: time conversion, money, small JSON writers."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def local_to_utc(
    epoch_day: np.ndarray, minute: np.ndarray, tz_code: np.ndarray, zones: Sequence[str]
) -> np.ndarray:
    """UTC epoch seconds of local wall-clock times (`epoch_day` local date, `minute` of
    the day, possibly beyond 1440) in the zone `zones[tz_code]`. Times in a DST gap are
    shifted forward; ambiguous ones take standard time (generated times avoid both)."""
    epoch_day = np.asarray(epoch_day, dtype=np.int64)
    minute = np.asarray(minute, dtype=np.int64)
    naive = (epoch_day * 86_400 + minute * 60) * 1_000_000_000
    out = np.empty(len(naive), dtype=np.int64)
    for code, zone in enumerate(zones):
        sel = np.flatnonzero(tz_code == code)
        if not len(sel):
            continue
        idx = pd.DatetimeIndex(naive[sel].astype("datetime64[ns]")).tz_localize(
            zone, ambiguous=np.zeros(len(sel), dtype=bool), nonexistent="shift_forward"
        )
        out[sel] = idx.asi8 // 1_000_000_000
    return out


def iso_day(d: date, offset: int) -> str:
    return (d + timedelta(days=int(offset))).isoformat()


def money_str(minor: int) -> str:
    """Decimal string with two fraction digits from integer minor units."""
    sign = "-" if minor < 0 else ""
    minor = abs(int(minor))
    return f"{sign}{minor // 100}.{minor % 100:02d}"


def money_arrow(minor: np.ndarray) -> pa.Array:
    minor = np.asarray(minor, dtype=np.int64)
    units = pc.cast(pa.array(minor // 100), pa.string())
    cents = pc.utf8_lpad(pc.cast(pa.array(minor % 100), pa.string()), 2, "0")
    return pc.binary_join_element_wise(units, ".", cents, "")


def bytes_to_arrow(matrix: np.ndarray) -> pa.Array:
    """(n, w) NUL-padded bytes → Arrow strings."""
    w = matrix.shape[1]
    return pa.array(np.ascontiguousarray(matrix).view(f"S{w}").ravel()).cast(pa.string())


def arrow_json_lines(fields: Sequence[tuple[str, pa.Array, str]]) -> pa.Array:
    """JSON objects, one per row, from Arrow columns: kind `str` (quoted), `raw` (a JSON
    token already: numbers, true/false). Nulls become `null`. Values must not need JSON
    escaping (checked)."""
    cols: list[Any] = []
    for i, (key, arr, kind) in enumerate(fields):
        cols.append(("{" if i == 0 else ",") + json.dumps(key) + ":")
        if kind == "str":
            if pc.any(pc.match_substring_regex(arr, r'["\\\x00-\x1f]')).as_py():
                raise ValueError(f"field {key!r}: value needs JSON escaping")
            token = pc.binary_join_element_wise('"', arr, '"', "")
        else:
            token = arr
        cols.append(pc.fill_null(token, "null"))
    cols.append("}\n")
    n = len(fields[0][1])
    cols = [pa.array([c] * n, pa.string()) if isinstance(c, str) else c for c in cols]
    return pc.binary_join_element_wise(*cols, "")


def write_arrow_lines(path: Path, lines: pa.Array, mode: str = "wb") -> int:
    """Write the concatenation of `lines` (each ending in a newline); returns row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode) as fh:
        for chunk in lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines]:
            offsets = chunk.buffers()[1]
            data = chunk.buffers()[2]
            if data is None:
                continue
            start = np.frombuffer(offsets, dtype=np.int32, count=1, offset=chunk.offset * 4)[0]
            end = np.frombuffer(
                offsets, dtype=np.int32, count=1, offset=(chunk.offset + len(chunk)) * 4
            )[0]
            fh.write(memoryview(data)[start:end])
    return len(lines)


def write_json_lines(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Small files: one `json.dumps` per record (UTF-8, not ASCII-escaped)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
            n += 1
    return n
