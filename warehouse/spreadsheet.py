"""Text that spreadsheets show and never evaluate, shared by the segment exports and the
marketer's report (kept apart from both: the report's writer processes import it
without pandas)."""

from __future__ import annotations

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """A text cell a spreadsheet would evaluate ("=…", "+…", "-…", "@…", tab, CR) gets a
    leading apostrophe; anything else is returned as is."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
