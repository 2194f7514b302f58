"""Fast writers for large JSON Lines files: fixed-width byte matrices built with numpy.

A JSON encoder called once per row costs microseconds; twenty million appointment rows
would take minutes. Every field of the appointments file is an id, a timestamp, a
category or a decimal, so each row is laid out in a fixed number of bytes and the rows
are assembled column by column with numpy gathers from lookup tables (digits, dates,
times of day, rendered ids, amounts and category tokens).

Fixed widths mean padding. The padding is JSON whitespace placed *between* tokens
(`"amount":   "850.00"`, `"promo_offer_id":"O0001"  ,`), never inside a string, so every
line is valid JSON with exactly the intended values. Tokens given to these writers
are ids, dates and numbers, which never need JSON escaping.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from functools import cache
from typing import BinaryIO

import numpy as np

SPACE = 32
QUOTE = 34


@cache
def _digits5() -> np.ndarray:
    """(100000, 5) ASCII digits of 00000..99999."""
    n = np.arange(100_000)
    out = np.empty((100_000, 5), dtype=np.uint8)
    for k in range(5):
        out[:, 4 - k] = (n // 10**k) % 10 + 48
    return out


@cache
def _time_of_day() -> np.ndarray:
    """(86400, 8) ASCII `HH:MM:SS` for every second of a day."""
    s = np.arange(86_400)
    parts = [s // 3600, (s // 60) % 60, s % 60]
    out = np.full((86_400, 8), ord(":"), dtype=np.uint8)
    for i, p in enumerate(parts):
        out[:, 3 * i] = p // 10 + 48
        out[:, 3 * i + 1] = p % 10 + 48
    return out


def take_rows(table: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """`table[idx]` for a (k, w) byte table, gathering whole rows as single items (much
    faster than numpy's 2-D fancy indexing of short rows)."""
    w = table.shape[1]
    flat = np.ascontiguousarray(table).view(f"V{w}").ravel()
    return flat.take(idx).view(np.uint8).reshape(len(idx), w)


def digits(values: np.ndarray, width: int) -> np.ndarray:
    """(n, width) zero-padded ASCII digits of non-negative integers (width ≤ 15)."""
    v = np.asarray(values, dtype=np.int64)
    table = _digits5()
    out = np.empty((len(v), width), dtype=np.uint8)
    pos = width
    while pos > 0:
        take = min(5, pos)
        chunk = take_rows(table, v % 100_000)
        out[:, pos - take : pos] = chunk[:, 5 - take :]
        v = v // 100_000
        pos -= take
    return out


def int_text(values: np.ndarray, width: int) -> np.ndarray:
    """(n, width) decimal text of non-negative integers, left-aligned, space-padded."""
    v = np.asarray(values, dtype=np.int64)
    d = digits(v, width)
    n_digits = np.ones(len(v), dtype=np.int64)
    for k in range(1, width):
        n_digits += v >= 10**k
    shift = np.arange(width)[None, :] + (width - n_digits)[:, None]
    out = np.take_along_axis(d, np.minimum(shift, width - 1), axis=1)
    out[shift >= width] = SPACE
    return out


def id_tokens(letter: str, values: np.ndarray, width: int) -> np.ndarray:
    """`"<letter><zero-padded digits>"` JSON string tokens, (n, width + 3) bytes."""
    n = len(values)
    out = np.empty((n, width + 3), np.uint8)
    out[:, 0] = out[:, -1] = QUOTE
    out[:, 1] = ord(letter)
    out[:, 2:-1] = digits(values, width)
    return out


def string_tokens(values: np.ndarray) -> np.ndarray:
    """JSON string tokens of ASCII/UTF-8 strings that need no escaping (checked),
    left-aligned and space-padded: (n, longest + 2) bytes."""
    raw = np.asarray(values).astype(bytes)
    n, w = len(raw), max(raw.dtype.itemsize, 1)
    body = raw.view(np.uint8).reshape(n, w)
    if ((body < 32) & (body != 0)).any() or (body == QUOTE).any() or (body == ord("\\")).any():
        raise ValueError("value needs JSON escaping")
    out = np.full((n, w + 2), SPACE, dtype=np.uint8)
    out[:, 0] = QUOTE
    out[:, 1:-1] = np.where(body == 0, SPACE, body)
    out[np.arange(n), (body != 0).sum(axis=1) + 1] = QUOTE
    return out


class Timestamps:
    """ISO-8601 UTC renderer `YYYY-MM-DDTHH:MM:SSZ` for epoch seconds within a date range."""

    def __init__(self, first: date, last: date) -> None:
        self.first_epoch_day = (first - date(1970, 1, 1)).days
        n_days = (last - first).days + 1
        self.dates = np.frombuffer(
            "".join((first + timedelta(days=i)).isoformat() for i in range(n_days)).encode(),
            dtype=np.uint8,
        ).reshape(n_days, 10)

    def render(self, epoch_s: np.ndarray, *, quoted: bool = False) -> np.ndarray:
        """(n, 20) bytes (22 with `quoted`: a JSON string token); raises if a timestamp
        falls outside the table's date range."""
        epoch_s = np.asarray(epoch_s, dtype=np.int64)
        day = epoch_s // 86_400 - self.first_epoch_day
        if len(day) and (day.min() < 0 or day.max() >= len(self.dates)):
            raise ValueError("timestamp outside the renderer's date range")
        q = int(quoted)
        shape = Layout.fixed(("q", q), ("date", 10), ("T", 1), ("time", 8), ("Z", 1), ("q2", q))
        out = np.empty((len(epoch_s), shape.itemsize), dtype=np.uint8)
        rows = out.view(shape).ravel()
        rows["date"] = take_rows(self.dates, day).view("V10").ravel()
        rows["time"] = take_rows(_time_of_day(), epoch_s % 86_400).view("V8").ravel()
        out[:, 10 + q] = ord("T")
        out[:, 19 + q] = ord("Z")
        if quoted:
            out[:, 0] = out[:, -1] = QUOTE
        return out

    def render_date(self, epoch_day: np.ndarray) -> np.ndarray:
        """(n, 10) `YYYY-MM-DD` for epoch day numbers."""
        return self.dates[np.asarray(epoch_day, dtype=np.int64) - self.first_epoch_day]


def token_table(tokens: Sequence[str], *, align: str = "left") -> np.ndarray:
    """(k, width) JSON tokens padded with spaces (`left`: after, `right`: before)."""
    raw = [t.encode() for t in tokens]
    w = max(len(t) for t in raw)
    out = np.full((len(raw), w), SPACE, dtype=np.uint8)
    for i, t in enumerate(raw):
        if align == "left":
            out[i, : len(t)] = np.frombuffer(t, dtype=np.uint8)
        else:
            out[i, w - len(t) :] = np.frombuffer(t, dtype=np.uint8)
    return out


class Layout:
    """A fixed-width JSON object per row: keys and punctuation are the same on every
    row, each field owns a column range of a given width.

    `new(n)` gives an (n, width) matrix already holding the constant bytes; `put`/`take`
    fill a field's columns with JSON tokens (space-padded to exactly the field's width).
    Rows end in `}\\n`, so `matrix.tobytes()` is the JSONL content.
    """

    def __init__(self, fields: Sequence[tuple[str, int]]) -> None:
        parts: list[bytes] = []
        names, formats, offsets = [], [], []
        pos = 0
        for i, (key, width) in enumerate(fields):
            prefix = f'{"{" if i == 0 else ","}"{key}":'.encode()
            pos += len(prefix)
            names.append(key)
            formats.append(f"V{width}")
            offsets.append(pos)
            parts += [prefix, b" " * width]
            pos += width
        parts.append(b"}\n")
        self.template = np.frombuffer(b"".join(parts), dtype=np.uint8)
        # a structured view of a row: copying a field as one opaque item is several times
        # faster than a 2-D copy of a narrow column range
        self.dtype = np.dtype(
            {"names": names, "formats": formats, "offsets": offsets, "itemsize": pos + 2}
        )

    @staticmethod
    def fixed(*fields: tuple[str, int]) -> np.dtype:
        """A structured dtype of consecutive opaque fields (zero widths skipped)."""
        kept = [(k, w) for k, w in fields if w]
        offsets = np.cumsum([0] + [w for _, w in kept])
        return np.dtype(
            {
                "names": [k for k, _ in kept],
                "formats": [f"V{w}" for _, w in kept],
                "offsets": offsets[:-1].tolist(),
                "itemsize": int(offsets[-1]),
            }
        )

    def new(self, n: int) -> np.ndarray:
        out = np.empty((n, len(self.template)), dtype=np.uint8)
        out[:] = self.template
        return out

    def put(self, out: np.ndarray, key: str, tokens: np.ndarray) -> None:
        """Write (n, w) token bytes, w the field's width, at the field's columns."""
        tokens = np.ascontiguousarray(tokens)
        out.view(self.dtype).ravel()[key] = tokens.view(self.dtype[key]).ravel()

    def take(
        self, out: np.ndarray, key: str, tables: dict[str, np.ndarray], codes: np.ndarray
    ) -> None:
        """Write `tables[key][codes]` (a token table of the field's width) at the field."""
        self.put(out, key, take_rows(tables[key], codes))


def decimal_tokens(
    minor: np.ndarray, null: np.ndarray | None = None, int_width: int = 9
) -> np.ndarray:
    """JSON string tokens of decimals with 2 fraction digits from integer minor units,
    right-aligned with leading spaces (`   "1234.50"`); `null` rows render as `null`."""
    minor = np.asarray(minor, dtype=np.int64)
    if (minor < 0).any():
        raise ValueError("negative amounts are not rendered by decimal_tokens")
    n = len(minor)
    units = minor // 100
    out = np.full((n, int_width + 5), SPACE, dtype=np.uint8)
    d = digits(units, int_width)
    n_digits = np.maximum(1, np.floor(np.log10(np.maximum(units, 1))).astype(np.int64) + 1)
    n_digits[units == 0] = 1
    lead = int_width - n_digits
    body = out[:, 1 : int_width + 1]
    body[:] = d
    body[np.arange(int_width)[None, :] < lead[:, None]] = SPACE
    out[np.arange(n), lead] = QUOTE
    out[:, int_width + 1] = ord(".")
    out[:, int_width + 2 : int_width + 4] = digits(minor % 100, 2)
    out[:, int_width + 4] = QUOTE
    if null is not None and null.any():
        out[null] = SPACE
        out[null, -4:] = np.frombuffer(b"null", dtype=np.uint8)
    return out


def write_matrix(fh: BinaryIO, matrix: np.ndarray) -> None:
    fh.write(memoryview(np.ascontiguousarray(matrix)).cast("B"))
