"""Value parsing shared by the partner adapters and the offers/messages loaders.

Every parser is total: it never raises on a bad value. It returns the parsed value
(or None / NaT) plus, per element, an error text that says what was wrong, so the
caller can quarantine the row with a precise reason while the rest still loads.
Money never passes through float: decimal strings go straight to `Decimal`, JSON
is read with `parse_float=Decimal`, minor units are scaled by a power of ten.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from babel.numbers import get_currency_precision

# Decimal(18, 2): 16 integer digits, 2 fractional.
_MONEY_LIMIT = Decimal(10) ** 16
_CENT = Decimal("0.01")
# Spaces people put between thousands: plain, no-break, narrow no-break, thin.
_GROUPING_SPACES = re.compile(r"[ \u00a0\u202f\u2009']")


class FeedFormatError(ValueError):
    """A file as a whole cannot be read in its expected format (the message names it)."""


def decode_text(content: bytes, name: str, encoding: str = "utf-8-sig") -> str:
    """Bytes → text; `utf-8-sig` also drops a leading BOM."""
    try:
        return content.decode(encoding)
    except UnicodeDecodeError as ex:
        raise FeedFormatError(
            f"{name}: not valid {encoding} text (byte {ex.start}: {ex.reason})"
        ) from ex
    except LookupError as ex:
        raise FeedFormatError(f"{name}: unknown encoding {encoding!r}") from ex


def read_json_lines(
    content: bytes, name: str
) -> tuple[list[tuple[str, dict]], list[dict[str, str]]]:
    """JSON lines → ([(`line N`, object)], rejects). Numbers with a fraction become
    Decimal. A line that is not a JSON object is a reject (quarantine row with
    `row_ref`, `field`, `reason`, `raw_row`); a non-empty file where no line is an
    object raises FeedFormatError, because then the file is not JSON lines at all."""
    text = decode_text(content, name)
    records: list[tuple[str, dict]] = []
    rejects: list[dict[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row_ref = f"line {number}"
        try:
            record = json.loads(line, parse_float=Decimal)
        except json.JSONDecodeError as ex:
            rejects.append(_reject(row_ref, f"not valid JSON: {ex.msg}", line))
            continue
        if not isinstance(record, dict):
            rejects.append(_reject(row_ref, "not a JSON object", line))
            continue
        records.append((row_ref, record))
    if rejects and not records:
        raise FeedFormatError(f"{name}: no line is a JSON object ({rejects[0]['reason']})")
    return records, rejects


def _reject(row_ref: str, reason: str, raw_row: str) -> dict[str, str]:
    return {"row_ref": row_ref, "field": "*", "reason": reason, "raw_row": raw_row}


def is_missing(value: object) -> bool:
    """None, NaN/NaT, or a blank string."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def money_error(value: Decimal) -> str | None:
    """Why `value` does not fit Decimal(18, 2), or None when it does."""
    if not value.is_finite():
        return f"amount {value} is not a finite number"
    if abs(value) >= _MONEY_LIMIT:
        return f"amount {value} exceeds Decimal(18, 2)"
    if value != value.quantize(_CENT):
        return f"amount {value} has more than 2 decimal places"
    return None


def parse_money(
    value: object, *, decimal_sep: str = ".", required: bool = True
) -> tuple[Decimal | None, str | None]:
    """A major-unit amount (`"1 234,50"`, `"12.30"`, `Decimal`, int) → (Decimal, error).

    `decimal_sep` is the separator the source uses (`,` for decimal-comma exports);
    grouping spaces are ignored. Floats are refused: they mean the source already lost
    precision, which must not be hidden.
    """
    if is_missing(value):
        return None, ("amount is missing" if required else None)
    if isinstance(value, (bool, float)):
        return None, f"amount {value!r} is a binary float, expected a decimal string"
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    else:
        text = _GROUPING_SPACES.sub("", str(value).strip())
        if decimal_sep != ".":
            if "." in text:
                return (
                    None,
                    f"amount {value!r}: unexpected '.', the decimal separator is {decimal_sep!r}",
                )
            text = text.replace(decimal_sep, ".")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            return None, f"amount {value!r} is not a number"
    error = money_error(amount)
    return (None, error) if error else (amount.quantize(_CENT), None)


def minor_exponent(currency: str) -> int:
    """Digits after the decimal point of the currency (ISO 4217 via CLDR): RUB 2, JPY 0."""
    return int(get_currency_precision(currency.upper()))


def parse_minor_units(
    value: object, currency: str, *, exponent: int | None = None
) -> tuple[Decimal | None, str | None]:
    """An integer amount in minor units (kopecks, cents) → major-unit Decimal."""
    if is_missing(value):
        return None, "amount is missing"
    if isinstance(value, (bool, float)):
        return None, f"minor-unit amount {value!r} is not an integer"
    if isinstance(value, Decimal):
        if value != value.to_integral_value():
            return None, f"minor-unit amount {value} is not an integer"
        minor = int(value)
    elif isinstance(value, int):
        minor = value
    else:
        text = str(value).strip()
        if not re.fullmatch(r"[+-]?\d+", text):
            return None, f"minor-unit amount {value!r} is not an integer"
        minor = int(text)
    digits = minor_exponent(currency) if exponent is None else exponent
    amount = Decimal(minor).scaleb(-digits)
    error = money_error(amount)
    return (None, error) if error else (amount.quantize(_CENT), None)


def parse_utc_timestamps(values: Iterable[object]) -> tuple[pd.Series, list[str | None]]:
    """ISO-8601 strings (offset → converted, naive → taken as UTC) or epoch numbers
    (seconds; milliseconds when above 1e11) → (datetime64[ms, UTC] Series, errors)."""
    items = pd.Series(list(values), dtype=object)
    # Fast path: plain ISO-8601 strings parse in one vectorised call; anything else
    # (epoch numbers, odd spellings, garbage) goes element by element.
    texts = items.map(lambda v: v if isinstance(v, str) and not v.strip().isdigit() else None)
    out = pd.to_datetime(texts, utc=True, format="ISO8601", errors="coerce")
    out = pd.Series(out, index=items.index).astype("datetime64[ms, UTC]")
    errors: list[str | None] = [None] * len(items)
    slow = np.flatnonzero(out.isna().to_numpy())
    if len(slow):
        stamps = []
        for i in slow:
            stamp, errors[i] = _one_utc_timestamp(items.iat[i])
            stamps.append(stamp)
        # One assignment for all: per-element setitem on a Series costs ~100 µs.
        out.iloc[slow] = pd.DatetimeIndex(stamps, tz="UTC").as_unit("ms")
    return out, errors


def _one_utc_timestamp(value: object) -> tuple[pd.Timestamp, str | None]:
    if is_missing(value):
        return pd.NaT, "timestamp is missing"
    try:
        if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
            number = int(value)
            unit = "ms" if abs(number) > 100_000_000_000 else "s"
            stamp = pd.Timestamp(number, unit=unit, tz="UTC")
        elif isinstance(value, str) and re.fullmatch(r"\d{9,13}", value.strip()):
            return _one_utc_timestamp(int(value.strip()))
        elif isinstance(value, str):
            stamp = pd.Timestamp(value.strip())
            stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        else:
            return pd.NaT, f"timestamp {value!r} is neither ISO-8601 nor epoch seconds"
    except (ValueError, OverflowError, TypeError) as ex:
        return pd.NaT, f"timestamp {value!r} is not a valid date/time ({ex})"
    if pd.isna(stamp):
        return pd.NaT, f"timestamp {value!r} is not a valid date/time"
    return stamp, None


def parse_local_timestamps(
    values: Sequence[object], formats: Sequence[str], timezone: str
) -> tuple[pd.Series, list[str | None]]:
    """Local wall-clock strings in one of `formats` (strptime, tried in order) in the IANA
    `timezone` → (datetime64[ms, UTC] Series, errors).

    Across a DST change, an ambiguous wall time (the repeated hour in autumn) is read
    as its first occurrence (summer time) and a non-existent one (the skipped hour in
    spring) is moved forward to the first valid instant, so every well-formed value
    converts deterministically.
    """
    raw = pd.Series([None if is_missing(v) else str(v).strip() for v in values], dtype=object)
    naive = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ms]")
    for fmt in formats:
        todo = naive.isna() & raw.notna()
        if not todo.any():
            break
        parsed = pd.to_datetime(raw[todo], format=fmt, errors="coerce", exact=True)
        naive[todo] = parsed.astype("datetime64[ms]")
    localized = pd.DatetimeIndex(naive).tz_localize(
        ZoneInfo(timezone), ambiguous=np.ones(len(naive), dtype=bool), nonexistent="shift_forward"
    )
    utc = pd.Series(localized.tz_convert("UTC"), index=raw.index).astype("datetime64[ms, UTC]")
    shown = " or ".join(formats)
    errors = [
        None
        if not pd.isna(stamp)
        else ("date is missing" if text is None else f"date {text!r} does not match {shown}")
        for text, stamp in zip(raw, utc, strict=True)
    ]
    return utc.reset_index(drop=True), errors


def parse_date(value: object) -> tuple[date | None, str | None]:
    """`YYYY-MM-DD` → date."""
    if is_missing(value):
        return None, "date is missing"
    try:
        return date.fromisoformat(str(value).strip()), None
    except ValueError:
        return None, f"date {value!r} is not YYYY-MM-DD"


def dig(record: object, path: str) -> object:
    """`record["a"]["b"]` for the dotted path `a.b`; None when any level is absent."""
    current = record
    for part in path.split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current
