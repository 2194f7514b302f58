"""Personal data kept out of logs, metadata and error messages: one masking module.

Anything printed, logged or attached to Dagster metadata goes through here when it may
carry a customer's phone number or name (raw-row previews, dry-run samples, provider and
CRM error bodies, quarantine reasons, sensor examples). The warehouse keeps the real
values; only what is *shown* is masked.

- `mask_phone("+79161234567")` → `+7916***4567`: the first four and last four digits
  (enough to tell numbers apart in a log, not enough to call anyone);
- `mask_name("Анна Петрова")` → `А*** П***`;
- `mask_text(text, names)` masks every phone-like run of digits in free text (E.164,
  national spellings with spaces, dashes or brackets, WhatsApp ids without `+`; ISO
  dates are left alone)
  and replaces each part of the given names by `‹name›`;
- `mask_frame(frame)` masks a preview: phone and name columns by value, free-text
  columns (payloads, raw rows, message texts, reasons) with `mask_text`;
- `redact_dsn(dsn)` hides a DSN's password (re-exported from `warehouse.config`).

Masking is idempotent: masking a masked text changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from warehouse.config import redact_dsn

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["mask_frame", "mask_name", "mask_phone", "mask_text", "redact_dsn"]

# A run of digits with the separators people type inside phone numbers, not inside a
# word or after a decimal point (message ids, fractions), never at an ISO date (previews
# are full of timestamps).
_PHONE_LIKE = re.compile(r"(?<![\w.])(?!\d{4}-\d\d-\d\d)\+?\d[\d ()-]{5,}\d")
# Fewer digits than this is no phone number (amounts, dates, small counters).
_MIN_DIGITS = 7

PHONE_COLUMNS = frozenset({"phone", "phone_e164", "phone_raw", "recipient", "customer_phone"})
NAME_COLUMNS = frozenset({"full_name", "first_name", "last_name", "customer_name"})
TEXT_COLUMNS = frozenset(
    {"payload", "raw_payload", "raw_row", "text", "reason", "last_error", "message", "body"}
)


def mask_phone(phone: str | None) -> str:
    """`+79161234567` → `+7916***4567`; shorter numbers keep fewer digits; '' stays ''."""
    text = str(phone or "")
    digits = re.sub(r"\D", "", text)
    if not digits:
        return "" if not text.strip() else "***"
    plus = "+" if text.lstrip().startswith("+") else ""
    if len(digits) >= 10:
        return f"{plus}{digits[:4]}***{digits[-4:]}"
    if len(digits) >= 6:
        return f"{plus}{digits[:2]}***{digits[-2:]}"
    return "***"


def mask_name(name: str | None) -> str:
    """Each part of a name as its first letter and `***`: `Анна Петрова` → `А*** П***`."""
    return " ".join(f"{part[0]}***" for part in str(name or "").split())


def _mask_match(match: re.Match[str]) -> str:
    found = match.group()
    digits = sum(ch.isdigit() for ch in found)
    return mask_phone(found) if digits >= _MIN_DIGITS else found


def mask_text(text: str | None, names: Iterable[str | None] = ()) -> str:
    """Phones in free text masked; every part (2+ letters) of `names` replaced by `‹name›`."""
    out = _PHONE_LIKE.sub(_mask_match, str(text or ""))
    parts = {p for n in names for p in str(n or "").split() if len(p) > 1}
    for part in sorted(parts, key=len, reverse=True):
        out = re.sub(rf"\b{re.escape(part)}\b", "‹name›", out)
    return out


def mask_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` fit to show: phone, name and free-text columns masked."""
    # Imported here: the CLI imports this module at start (its activation commands mask
    # previews), and pandas would add a second to every command and report worker.
    import pandas as pd

    out = frame.copy()
    for column in out.columns:
        name = str(column)
        if name in PHONE_COLUMNS:
            masker = mask_phone
        elif name in NAME_COLUMNS:
            masker = mask_name
        elif name in TEXT_COLUMNS:
            masker = mask_text
        else:
            continue
        out[column] = [None if pd.isna(v) else masker(str(v)) for v in out[column]]
    return out
