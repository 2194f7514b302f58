"""Loading `partners/offers.jsonl` (canonical partner offers) into `raw.partner_offers`.

One offer per line (SOURCES.md): `offer_id`, `publisher_business_id`, `title`,
`distributor_business_ids` (list), `reward_per_client` (decimal string), `discount_pct`,
`cashback_pct`, `currency`, `capacity`, `audience` {`min_age`, `max_age`, `gender`},
`valid_from`, `valid_to` (YYYY-MM-DD). The file is one idempotent batch (content
hash); a later file version re-states offers, which collapse on `offer_id`.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pandas as pd
from clickhouse_connect.driver.client import Client

from ingestion.partners.load import load_whole_file
from ingestion.partners.parsing import is_missing, parse_date, parse_money, read_json_lines
from ingestion.partners.schema import PARTNER_OFFER_COLUMNS
from ingestion.partners.validation import QUARANTINE_COLUMNS, validate_rows
from warehouse.load import LoadResult

OFFERS_TABLE = "partner_offers"
SOURCE_KIND = "partner_offers"


def _percent(value: object) -> tuple[Decimal | None, str | None]:
    if is_missing(value):
        return None, None
    if isinstance(value, (bool, float)):
        return None, f"percentage {value!r} is a binary float, expected a decimal"
    try:
        pct = Decimal(str(value).strip())
    except InvalidOperation:
        return None, f"percentage {value!r} is not a number"
    if not pct.is_finite() or not 0 <= pct <= 100:
        return None, f"percentage {value!r} is not between 0 and 100"
    return pct, None


def _whole(value: object, what: str, upper: int) -> tuple[int | None, str | None]:
    if is_missing(value):
        return None, None
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        return None, f"{what} {value!r} is not a whole number"
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None, f"{what} {value!r} is not a whole number"
    if not number.is_finite() or number != number.to_integral_value() or not 0 <= number <= upper:
        return None, f"{what} {value!r} is not a whole number in 0..{upper}"
    return int(number), None


def build_offers(content: bytes, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """offers.jsonl bytes → (rows of `PARTNER_OFFER_COLUMNS`, quarantine rows)."""
    records, rejects = read_json_lines(content, name)
    rows: list[dict[str, object]] = []
    errors: dict[str, list[str | None]] = {
        c: [] for c in ("reward_per_client", "discount_pct", "cashback_pct", "capacity",
                        "audience_min_age", "audience_max_age", "valid_from", "valid_to",
                        "distributor_business_ids")
    }  # fmt: skip
    for _, record in records:
        audience = record.get("audience") if isinstance(record.get("audience"), dict) else {}
        reward, errors_reward = parse_money(record.get("reward_per_client"))
        discount, e_discount = _percent(record.get("discount_pct"))
        cashback, e_cashback = _percent(record.get("cashback_pct"))
        capacity, e_capacity = _whole(record.get("capacity"), "capacity", 2**32 - 1)
        min_age, e_min = _whole(audience.get("min_age"), "min_age", 130)
        max_age, e_max = _whole(audience.get("max_age"), "max_age", 130)
        valid_from, e_from = parse_date(record.get("valid_from"))
        valid_to, e_to = parse_date(record.get("valid_to"))
        distributors = record.get("distributor_business_ids")
        e_dist = None
        if distributors is None:
            distributors = []
        elif not isinstance(distributors, list):
            e_dist, distributors = f"{distributors!r} is not a list", []
        gender = audience.get("gender")
        rows.append(
            {
                "offer_id": _str(record.get("offer_id")),
                "publisher_business_id": _str(record.get("publisher_business_id")),
                "title": _str(record.get("title")) or "",
                "distributor_business_ids": [str(d) for d in distributors],
                "reward_per_client": reward,
                "discount_pct": discount,
                "cashback_pct": cashback,
                "currency": (_str(record.get("currency")) or "").upper() or None,
                "capacity": capacity,
                "audience_min_age": min_age,
                "audience_max_age": max_age,
                "audience_gender": None if is_missing(gender) else str(gender).strip().lower(),
                "valid_from": valid_from,
                "valid_to": valid_to,
            }
        )
        for column, error in (
            ("reward_per_client", errors_reward), ("discount_pct", e_discount),
            ("cashback_pct", e_cashback), ("capacity", e_capacity),
            ("audience_min_age", e_min), ("audience_max_age", e_max),
            ("valid_from", e_from), ("valid_to", e_to), ("distributor_business_ids", e_dist),
        ):  # fmt: skip
            errors[column].append(error)
    offers = pd.DataFrame.from_records(rows, columns=list(PARTNER_OFFER_COLUMNS))
    offers["capacity"] = pd.array(offers["capacity"].tolist(), dtype="UInt32")
    for column in ("audience_min_age", "audience_max_age"):
        offers[column] = pd.array(offers[column].tolist(), dtype="UInt8")
    good, bad = validate_rows(
        offers,
        "partner_offers",
        source=SOURCE_KIND,
        row_ref=pd.Series([ref for ref, _ in records], dtype=object),
        raw_row=pd.Series([_json(r) for _, r in records], dtype=object),
        parse_errors=errors,
    )
    rejected = pd.DataFrame(rejects, columns=["row_ref", "field", "reason", "raw_row"])
    rejected.insert(0, "source_kind", SOURCE_KIND)
    quarantine = pd.concat([q for q in (rejected, bad) if len(q)] or [rejected], ignore_index=True)
    return good.reset_index(drop=True), quarantine[list(QUARANTINE_COLUMNS)]


def load_offers(client: Client, offers_file: Path) -> LoadResult:
    """Load `partners/offers.jsonl` as one idempotent batch into `raw.partner_offers`.

    Raises FeedFormatError (naming the file) when it is not JSON lines at all, and
    OSError when it cannot be read.
    """
    return load_whole_file(client, OFFERS_TABLE, offers_file, prefix="offers", build=build_offers)


def _str(value: object) -> str | None:
    return None if is_missing(value) else str(value).strip()


def _json(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, default=str, sort_keys=True)
