"""The vectorised writers of the generator agree with the straightforward computations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from simulation.ecosystem import _lines
from simulation.ecosystem.common import local_to_utc


def test_local_to_utc_matches_pandas_across_dst_changes() -> None:
    zones = ["Asia/Almaty", "Europe/Berlin", "Europe/Moscow"]
    rng = np.random.default_rng(1)
    n = 200_000
    day = rng.integers(19_700, 20_800, size=n)  # 2023–2026: Berlin switches twice a year
    minute = rng.integers(-1_500, 3_000, size=n)  # any minute, other days included
    tz = rng.integers(0, len(zones), size=n)
    got = local_to_utc(day, minute, tz, zones)
    want = np.empty(n, dtype=np.int64)
    for code, zone in enumerate(zones):
        sel = tz == code
        local = pd.DatetimeIndex(((day[sel] * 86_400 + minute[sel] * 60) * 10**9).astype("M8[ns]"))
        want[sel] = (
            local.tz_localize(
                zone, ambiguous=np.zeros(sel.sum(), dtype=bool), nonexistent="shift_forward"
            ).asi8
            // 10**9
        )
    assert (got == want).all()


def test_layout_rows_are_json_with_the_values() -> None:
    layout = _lines.Layout([("id", 13), ("n", 6), ("s", 4), ("at", 22)])
    ids = np.array([1, 42, 9_999_999_999])
    tables = {"s": _lines.token_table(['"a"', '"bb"', "null"])}
    ts = _lines.Timestamps(pd.Timestamp("2026-03-29").date(), pd.Timestamp("2026-03-31").date())
    epoch = np.array([1_774_742_400, 1_774_828_799, 1_774_828_800 + 3_661])
    out = layout.new(3)
    layout.put(out, "id", _lines.id_tokens("A", ids, 10))
    layout.put(out, "n", _lines.int_text(np.array([0, 7, 12_345]), 6))
    layout.take(out, "s", tables, np.array([2, 0, 1]))
    layout.put(out, "at", ts.render(epoch, quoted=True))
    rows = [json.loads(line) for line in out.tobytes().decode().splitlines()]
    assert rows == [
        {"id": "A0000000001", "n": 0, "s": None, "at": "2026-03-29T00:00:00Z"},
        {"id": "A0000000042", "n": 7, "s": "a", "at": "2026-03-29T23:59:59Z"},
        {"id": "A9999999999", "n": 12_345, "s": "bb", "at": "2026-03-30T01:01:01Z"},
    ]
    with pytest.raises(ValueError):
        layout.put(out, "n", _lines.int_text(np.array([1, 2, 3]), 5))  # not the field's width


def test_string_tokens_pad_outside_the_quotes_and_refuse_escapes() -> None:
    tok = _lines.string_tokens(np.array(["+79161234567", "+4915112345678", ""], dtype=object))
    assert [json.loads(row.tobytes()) for row in tok] == ["+79161234567", "+4915112345678", ""]
    with pytest.raises(ValueError, match="escaping"):
        _lines.string_tokens(np.array(['say "hi"'], dtype=object))
