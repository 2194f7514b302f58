"""Fast writers for large JSON Lines files: fixed-width byte matrices built with numpy.

A JSON encoder called once per row costs microseconds; twenty million appointment rows
would take minutes. Every field of the large files (appointments, sends) is an id, a
timestamp, a category, a decimal or a phone number, so each row is laid out in a fixed
number of bytes and the rows are assembled column by column with numpy gathers from
small lookup tables (digits, dates, times of day, category tokens).

Fixed widths mean padding. The padding is JSON whitespace placed *between* tokens
(`"amount":   "850.00"`, `"phone":"+79161234567"  ,`), never inside a string, so every
line is valid JSON with exactly the intended values. Strings given to these writers
must not need JSON escaping (no quotes, backslashes or control characters); the
builder checks this.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from functools import cache
from typing import BinaryIO

import numpy as np

SPACE = 32
QUOTE = 34
_NEEDS_ESCAPE = np.zeros(256, dtype=bool)
_NEEDS_ESCAPE[[ord('"'), ord("\\"), *range(1, 32)]] = True


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


class Timestamps:
    """ISO-8601 UTC renderer `YYYY-MM-DDTHH:MM:SSZ` for epoch seconds within a date range."""

    def __init__(self, first: date, last: date) -> None:
        self.first_epoch_day = (first - date(1970, 1, 1)).days
        n_days = (last - first).days + 1
        self.dates = np.frombuffer(
            "".join((first + timedelta(days=i)).isoformat() for i in range(n_days)).encode(),
            dtype=np.uint8,
        ).reshape(n_days, 10)

    def render(self, epoch_s: np.ndarray) -> np.ndarray:
        """(n, 20) bytes; raises if a timestamp falls outside the table's date range."""
        epoch_s = np.asarray(epoch_s, dtype=np.int64)
        day = epoch_s // 86_400 - self.first_epoch_day
        if len(day) and (day.min() < 0 or day.max() >= len(self.dates)):
            raise ValueError("timestamp outside the renderer's date range")
        out = np.empty((len(epoch_s), 20), dtype=np.uint8)
        out[:, :10] = take_rows(self.dates, day)
        out[:, 10] = ord("T")
        out[:, 11:19] = take_rows(_time_of_day(), epoch_s % 86_400)
        out[:, 19] = ord("Z")
        return out

    def render_date(self, epoch_day: np.ndarray) -> np.ndarray:
        """(n, 10) `YYYY-MM-DD` for epoch day numbers."""
        return self.dates[np.asarray(epoch_day, dtype=np.int64) - self.first_epoch_day]


def ascii_matrix(values: Sequence[str] | np.ndarray, width: int | None = None) -> np.ndarray:
    """(n, width) UTF-8 bytes of strings, NUL-padded on the right."""
    arr = np.asarray([v.encode() for v in values] if not isinstance(values, np.ndarray) else values)
    if arr.dtype.kind == "U":
        arr = np.char.encode(arr, "utf-8")
    w = max(arr.dtype.itemsize, 1) if width is None else width
    arr = arr.astype(f"S{w}")
    return arr.view(np.uint8).reshape(len(arr), w)


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


class LineBuilder:
    """Assembles `n` JSON objects as one fixed-width byte matrix, field by field.

    Field methods take the key and a value representation; the result of `build()` ends
    every row with `}\\n`, so `matrix.tobytes()` is the JSONL content.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.parts: list[np.ndarray | bytes] = []
        self._first = True

    def _key(self, key: str) -> None:
        prefix = "{" if self._first else ","
        self._first = False
        self.parts.append(f'{prefix}"{key}":'.encode())

    def raw(self, key: str, matrix: np.ndarray) -> LineBuilder:
        """A field whose bytes (already a JSON token, space-padded) are given as (n, w)."""
        self._key(key)
        self.parts.append(matrix)
        return self

    def const(self, key: str, token: str) -> LineBuilder:
        """The same JSON token on every row."""
        self._key(key)
        self.parts.append(token.encode())
        return self

    def string(self, key: str, matrix: np.ndarray, null: np.ndarray | None = None) -> LineBuilder:
        """A JSON string from NUL-padded bytes (n, w); `null` marks rows rendered as null."""
        if _NEEDS_ESCAPE[matrix].any():
            raise ValueError(f"field {key!r}: value needs JSON escaping")
        n, w = matrix.shape
        out = np.full((n, w + 2), SPACE, dtype=np.uint8)
        out[:, 0] = QUOTE
        body = out[:, 1 : w + 1]
        body[:] = matrix
        lengths = (matrix != 0).sum(axis=1)
        body[matrix == 0] = SPACE
        out[np.arange(n), lengths + 1] = QUOTE
        if null is not None and null.any():
            out[null] = SPACE
            out[null, :4] = np.frombuffer(b"null", dtype=np.uint8)
        return self.raw(key, out)

    def category(self, key: str, codes: np.ndarray, tokens: Sequence[str]) -> LineBuilder:
        """One of a few JSON tokens (e.g. `'"completed"'`, `'null'`) picked per row."""
        return self.raw(key, take_rows(token_table(tokens), np.asarray(codes)))

    def build(self) -> np.ndarray:
        self.parts.append(b"}\n")
        widths = [p.shape[1] if isinstance(p, np.ndarray) else len(p) for p in self.parts]
        out = np.empty((self.n, sum(widths)), dtype=np.uint8)
        pos = 0
        for part, w in zip(self.parts, widths, strict=True):
            if isinstance(part, np.ndarray):
                out[:, pos : pos + w] = part
            else:
                out[:, pos : pos + w] = np.frombuffer(part, dtype=np.uint8)
            pos += w
        return out


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
