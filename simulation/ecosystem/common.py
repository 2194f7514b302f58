"""Shared helpers of the synthetic generator: random streams, the manifest, time
conversion, money, small JSON writers."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class RandomStreams:
    """One independent random stream per phase of the generator, so a phase's draws never
    shift another's and the two writer processes draw nothing in common."""

    world: np.random.Generator  # businesses, locations, services, people, relationships
    latent: np.random.Generator  # per-relationship behaviour (model.draw_latent)
    offers: np.random.Generator  # partner offers and their recipients
    simulation: np.random.Generator  # visits and sends (model.Simulator)
    crm: np.random.Generator  # phone spellings, customer versions, appointment records
    messages: np.random.Generator  # send times, webhook events and their arrival
    partner_feeds: np.random.Generator  # cashback partners' ledgers

    @classmethod
    def from_seed(cls, seed: int) -> RandomStreams:
        # a spawned child depends only on its index, not on how many are spawned
        streams = np.random.SeedSequence(seed).spawn(7)
        return cls(*(np.random.default_rng(s) for s in streams))


class Manifest:
    """Rows (and extra facts) per written file, keyed by the path relative to the root;
    becomes the `files` of manifest.json."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, dict[str, Any]] = {}

    def add(self, path: Path, rows: int, **extra: Any) -> None:
        self.files[path.relative_to(self.root).as_posix()] = {"rows": int(rows), **extra}


def local_to_utc(
    epoch_day: np.ndarray, minute: np.ndarray, tz_code: np.ndarray, zones: Sequence[str]
) -> np.ndarray:
    """UTC epoch seconds of local wall-clock times (`epoch_day` local date, `minute` of
    the day, possibly beyond 1440) in the zone `zones[tz_code]`. Times in a DST gap are
    shifted forward; ambiguous ones take standard time (generated times avoid both).

    UTC offsets change only on whole local hours, so each zone's offset is looked up per
    local hour from a table built with pandas for the hours spanned (times inside a DST
    gap, where no single offset applies, go through pandas themselves)."""
    naive = np.asarray(epoch_day, dtype=np.int64) * 86_400 + np.asarray(minute, dtype=np.int64) * 60
    tz_code = np.asarray(tz_code)
    out = np.empty(len(naive), dtype=np.int64)
    if not len(naive):
        return out
    hour = naive // 3600
    first, last = int(hour.min()), int(hour.max())
    starts = (np.arange(first, last + 2, dtype=np.int64) * 3600).astype("datetime64[s]")
    for code, zone in enumerate(zones):
        sel = np.flatnonzero(tz_code == code)
        if not len(sel):
            continue
        utc = _localize(starts, zone)
        offset = starts.astype(np.int64)[:-1] - utc[:-1]
        gap = np.diff(utc) != 3600
        h = hour[sel] - first
        out[sel] = naive[sel] - offset[h]
        in_gap = sel[gap[h]]
        if len(in_gap):
            out[in_gap] = _localize(naive[in_gap].astype("datetime64[s]"), zone)
    return out


def _localize(local: np.ndarray, zone: str) -> np.ndarray:
    idx = pd.DatetimeIndex(local.astype("datetime64[ns]")).tz_localize(
        zone, ambiguous=np.zeros(len(local), dtype=bool), nonexistent="shift_forward"
    )
    return idx.asi8 // 1_000_000_000


def money_str(minor: int) -> str:
    """Decimal string with two fraction digits from integer minor units."""
    sign = "-" if minor < 0 else ""
    minor = abs(int(minor))
    return f"{sign}{minor // 100}.{minor % 100:02d}"


def bytes_to_arrow(matrix: np.ndarray) -> pa.Array:
    """(n, w) NUL-padded bytes → Arrow strings."""
    w = matrix.shape[1]
    return pa.array(np.ascontiguousarray(matrix).view(f"S{w}").ravel()).cast(pa.string())


_ESCAPED = np.zeros(256, dtype=bool)
_ESCAPED[[ord('"'), ord("\\"), *range(32)]] = True


def _needs_escape(arr: pa.Array) -> bool:
    """Whether any string of `arr` holds a quote, backslash or control byte (a scan of
    the values buffer: much cheaper than a regex match per string)."""
    for chunk in arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]:
        chunk = chunk.cast(pa.string())
        offsets, data = chunk.buffers()[1], chunk.buffers()[2]
        if data is None or not len(chunk):
            continue
        bounds = np.frombuffer(
            offsets, dtype=np.int32, count=len(chunk) + 1, offset=chunk.offset * 4
        )
        raw = np.frombuffer(data, dtype=np.uint8)[bounds[0] : bounds[-1]]
        if _ESCAPED[raw].any():
            return True
    return False


def arrow_json_lines(fields: Sequence[tuple[str, pa.Array, str]]) -> pa.Array:
    """JSON objects, one per row, from Arrow columns: kind `str` (quoted), `raw` (a JSON
    token already: numbers, true/false). Nulls become `null`. Values must not need JSON
    escaping (checked)."""
    cols: list[Any] = []
    for i, (key, arr, kind) in enumerate(fields):
        cols.append(("{" if i == 0 else ",") + json.dumps(key) + ":")
        if kind == "str":
            if _needs_escape(arr):
                raise ValueError(f"field {key!r}: value needs JSON escaping")
            token = pc.binary_join_element_wise('"', arr, '"', "")
        else:
            token = arr
        cols.append(pc.fill_null(token, "null"))
    cols.append("}\n")
    # constant pieces are passed as scalars, which the kernel broadcasts
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
