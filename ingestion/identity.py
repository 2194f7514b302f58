"""Customer identity: phone numbers as typed by people → E.164 → stable `customer_id`.

Contract (DESIGN.md): a customer is an E.164 number per business, parsed with
`phonenumbers` using the business's country as the default region; `customer_id`
is the first 16 hex characters of HMAC-SHA256 of the E.164 string under the
installation's customer-id key. The key makes the id pseudonymous: without it a phone
cannot be found by hashing candidate numbers (a plain hash of a 10-digit number space
is reversed by enumeration in minutes). The same id in SQL (the key as a parameter):

    substring(lower(hex(HMAC('SHA256', phone_e164, key))), 1, 16)

One key per installation, not per business: the cross-business marts join a person's
visits at several businesses on `customer_id`. The front doors hand the key down
(`Settings.customer_id_key`); `revisit migrate customer-ids` rewrites stored ids after
the key changes.

Speed: a `phonenumbers.parse` costs ~20 µs, too slow for 100k+ rows/s. So:

1. rows are deduplicated on (spelling, region) — the same number is typed many times;
2. a vectorised fast path decides the common spellings of +7 numbers (Russia and
   Kazakhstan share country code 7): `+7XXXXXXXXXX`, `8XXXXXXXXXX`, `7XXXXXXXXXX`
   and the 10-digit national number, with spaces, dashes, dots and brackets. It
   re-implements exactly the steps `phonenumbers.parse` takes for those shapes
   (country-code extraction, national-prefix stripping, region by leading digits,
   number-type patterns), using the patterns of phonenumbers' own metadata compiled
   once and applied with vectorised regex;
3. the fast path only ever *accepts* a number; anything it does not accept (other
   spellings, other countries, apparently invalid numbers) goes to the full
   `phonenumbers` parse, so the slow path is the arbiter of every rejection.

A hypothesis property test (tests/identity) checks that the fast path agrees with
`parse` + `is_valid_number` + `format_number(E164)` on arbitrary spellings.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

ERROR_EMPTY = "empty"
ERROR_UNPARSEABLE = "unparseable"
ERROR_INVALID = "invalid number"

# Longer strings are left to the full parser (which itself refuses > 250 chars).
_FAST_MAX_LEN = 64
# Only ASCII digits and the punctuation people use in numbers; `\d` would also accept
# other scripts' digits, which phonenumbers normalises differently.
_FAST_SHAPE = r" *\+?[0-9 ().-]+"
_TYPE_FIELDS = (
    "premium_rate",
    "toll_free",
    "mobile",
    "fixed_line",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)


@dataclass(frozen=True)
class _RegionRules:
    """The parts of one region's metadata the fast path needs, as RE2-friendly regexes."""

    region: str
    general: str  # general_desc national_number_pattern
    leading: str | None  # leading_digits: decides RU vs KZ inside country code 7
    valid10: str  # alternation of the number-type patterns that allow 10 digits


@cache
def _rules(region: str) -> _RegionRules:
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    general_lengths = meta.general_desc.possible_length
    types = []
    for field in _TYPE_FIELDS:
        desc = getattr(meta, field)
        if desc is None or desc.national_number_pattern is None:
            continue
        lengths = desc.possible_length or general_lengths
        if lengths and 10 not in lengths:
            continue
        types.append(f"(?:{desc.national_number_pattern})")
    # A number of the region must fit the general description too.
    return _RegionRules(
        region=region,
        general=meta.general_desc.national_number_pattern,
        leading=meta.leading_digits,
        valid10="|".join(types) if types else "(?!)",
    )


# The fast path covers country code 7; its regions in phonenumbers' order (main first).
_CC = 7
_CC_REGIONS: tuple[str, ...] = tuple(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[_CC])


def _full(values: pd.Series, pattern: str) -> np.ndarray:
    return values.str.fullmatch(f"(?:{pattern})").to_numpy(dtype=bool, na_value=False)


def _valid_national(nat: pd.Series) -> np.ndarray:
    """Is `+7<nat>` a valid number (as `is_valid_number` decides) — for 10-digit `nat`.

    phonenumbers picks the region of a +7 number by walking RU, KZ: a region with
    `leading_digits` claims the number when they match its start; then the number
    must be of a known type in that region (and fit its general description).
    """
    valid = np.zeros(len(nat), dtype=bool)
    undecided = np.ones(len(nat), dtype=bool)
    for region in _CC_REGIONS:
        rules = _rules(region)
        if rules.leading is None:
            # Without leading digits the region claims any number of a known type.
            claims = undecided & _full(nat, rules.general) & _full(nat, rules.valid10)
            valid |= claims
        else:
            claims = undecided & nat.str.match(f"(?:{rules.leading})").to_numpy(
                dtype=bool, na_value=False
            )
            valid |= claims & _full(nat, rules.general) & _full(nat, rules.valid10)
        undecided &= ~claims
    return valid


def _fast_path(spelling: pd.Series, region: pd.Series) -> pd.Series:
    """E.164 for the spellings the fast path can accept, else NA (left to the parser)."""
    out = pd.Series(pd.NA, index=spelling.index, dtype="str")
    shaped = spelling.str.len().le(_FAST_MAX_LEN).to_numpy(dtype=bool, na_value=False).copy()
    shaped &= spelling.str.fullmatch(_FAST_SHAPE).to_numpy(dtype=bool, na_value=False)
    if not shaped.any():
        return out
    s = spelling[shaped]
    reg = region[shaped].to_numpy(dtype=object)
    digits = s.str.replace(r"[^0-9]", "", regex=True)
    n = digits.str.len().to_numpy()
    first = digits.str.slice(0, 1).to_numpy(dtype=object)
    plus = s.str.lstrip(" ").str.startswith("+").to_numpy(dtype=bool)
    rest10 = digits.str.slice(1)

    nat = pd.Series(pd.NA, index=s.index, dtype="str")
    # "+7" + 10 digits: the country code is explicit, the default region is irrelevant.
    take = plus & (n == 11) & (first == "7")
    nat[take] = rest10[take]
    for region_code in _CC_REGIONS:
        rules = _rules(region_code)
        in_region = ~plus & (reg == region_code)
        if not in_region.any():
            continue
        # "8" + 10 digits: the national prefix (8) is stripped because 11 digits are
        # never a viable national number here. "810…" would be the international
        # prefix; such national numbers ("10…") are never valid, but skip them anyway.
        eight = in_region & (n == 11) & (first == "8")
        eight &= ~digits.str.startswith("810").to_numpy(dtype=bool)
        nat[eight] = rest10[eight]
        # "7" + 10 digits: the default country code is stripped when the remainder
        # fits the region's general description (the 11 digits never do).
        seven = in_region & (n == 11) & (first == "7")
        seven &= _full(rest10, rules.general)
        nat[seven] = rest10[seven]
        # 10 digits: the national number as it is (no country code or prefix can
        # be stripped from a viable 10-digit number).
        ten = in_region & (n == 10) & ~digits.str.startswith("810").to_numpy(dtype=bool)
        nat[ten] = digits[ten]
    known = nat.notna().to_numpy()
    if not known.any():
        return out
    nat = nat[known]
    valid = _valid_national(nat)
    accepted = nat[valid]
    out[accepted.index] = "+7" + accepted
    return out


def parse_one(raw: str | None, region: str | None) -> tuple[str | None, str | None]:
    """The reference path: (E.164, None) or (None, reason) via `phonenumbers` itself."""
    if raw is None or (isinstance(raw, float) and np.isnan(raw)) or not str(raw).strip():
        return None, ERROR_EMPTY
    try:
        number = phonenumbers.parse(str(raw), region)
    except NumberParseException:
        return None, ERROR_UNPARSEABLE
    if not phonenumbers.is_valid_number(number):
        return None, ERROR_INVALID
    return phonenumbers.format_number(number, PhoneNumberFormat.E164), None


def normalize_phones(raw: pd.Series, region: str | pd.Series) -> pd.DataFrame:
    """Phones as typed → E.164.

    `raw`: any spelling, None/NaN allowed. `region`: ISO-3166 alpha-2 default country,
    one for all rows or a Series aligned with `raw`; it only matters for numbers
    without an international prefix. Returns a frame with the index of `raw` and
    columns `phone_e164` (str, None when invalid) and `error` (None, or one of
    "empty", "unparseable", "invalid number"). Nothing is guessed: a number the
    `phonenumbers` parser does not accept as valid is reported, never repaired.
    """
    index = raw.index
    if len(raw) == 0:
        return pd.DataFrame(
            {"phone_e164": pd.Series([], dtype=object), "error": pd.Series([], dtype=object)},
            index=index,
        )
    spelling = raw.astype("str").str.strip()
    spelling = spelling.where(raw.notna().to_numpy(), None)
    if isinstance(region, pd.Series):
        regions = region.astype("str").str.upper().to_numpy(dtype=object)
    else:
        regions = np.full(len(raw), str(region).upper(), dtype=object)

    # Deduplicate on (spelling, region): customers' phones repeat a lot across loads.
    if isinstance(region, pd.Series):
        key = pd.Series(regions, dtype="str") + "\x1f" + spelling.reset_index(drop=True)
    else:
        key = spelling.reset_index(drop=True)
    codes, uniques = pd.factorize(key, use_na_sentinel=True)
    first_pos = np.full(len(uniques), -1, dtype=np.int64)
    valid_codes = codes >= 0
    # Position of the first row of each unique key (reverse so the first wins).
    positions = np.arange(len(codes))[valid_codes][::-1]
    first_pos[codes[valid_codes][::-1]] = positions
    u_spelling = spelling.iloc[first_pos].reset_index(drop=True)
    u_region = pd.Series(regions[first_pos], dtype="str")

    e164 = _fast_path(u_spelling, u_region)
    e164_obj = e164.to_numpy(dtype=object, na_value=None)
    errors = np.full(len(uniques), None, dtype=object)
    empty = u_spelling.eq("").to_numpy(dtype=bool, na_value=True)
    errors[empty] = ERROR_EMPTY
    slow = np.flatnonzero(pd.isna(e164_obj) & ~empty)
    u_sp = u_spelling.to_numpy(dtype=object)
    u_rg = u_region.to_numpy(dtype=object)
    for i in slow:
        e164_obj[i], errors[i] = parse_one(u_sp[i], u_rg[i])

    out_e164 = np.full(len(raw), None, dtype=object)
    out_error = np.full(len(raw), ERROR_EMPTY, dtype=object)
    out_e164[valid_codes] = e164_obj[codes[valid_codes]]
    out_error[valid_codes] = errors[codes[valid_codes]]
    # object dtype keeps None (pandas 3 would infer `str` and turn None into NaN).
    return pd.DataFrame(
        {
            "phone_e164": pd.Series(out_e164, index=index, dtype=object),
            "error": pd.Series(out_error, index=index, dtype=object),
        }
    )


def customer_id(e164: pd.Series, key: bytes) -> pd.Series:
    """Pseudonymous customer id: first 16 hex chars of HMAC-SHA256(key, E.164 string).

    Same index as `e164`; None where `e164` is missing. Hashed once per distinct number
    (customers' phones repeat across rows). ClickHouse equivalent:
    `substring(lower(hex(HMAC('SHA256', phone_e164, key))), 1, 16)`.
    """
    if not key:
        raise ValueError("customer_id needs the installation's customer-id key (empty key)")
    if len(e164) == 0:
        return pd.Series([], index=e164.index, dtype=object)
    codes, uniques = pd.factorize(e164, use_na_sentinel=True)
    hashed = np.array(
        [hmac.new(key, str(v).encode(), hashlib.sha256).hexdigest()[:16] for v in uniques],
        dtype=object,
    )
    out = np.full(len(e164), None, dtype=object)
    ok = codes >= 0
    out[ok] = hashed[codes[ok]]
    return pd.Series(out, index=e164.index, dtype=object)


def customer_ids(phones: list[str] | np.ndarray, key: bytes) -> list[str]:
    """`customer_id` of each E.164 number (all present), for callers holding plain lists."""
    return customer_id(pd.Series(list(phones), dtype=object), key).tolist()
