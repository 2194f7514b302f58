"""Loading the historical trigger sends (`messages/sends.jsonl`) into `raw.message_sends`.

One send per line (SOURCES.md): `message_id`, `business_id`, `customer_phone` (E.164),
`trigger`, `campaign_id`, `channel`, `holdout` (bool), `planned_at` (UTC),
`offer_id`, `provider_message_id` (null for holdout). The phone is re-normalised
through `ingestion.identity` (the export promises E.164; a number that is not valid
E.164 is quarantined, never repaired) and gets its `customer_id`. The file is one
idempotent batch keyed by its content hash; a send re-exported in a later file
collapses on `message_id`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from clickhouse_connect.driver.client import Client

from ingestion import identity
from ingestion.partners.load import load_whole_file
from ingestion.partners.parsing import is_missing, parse_utc_timestamps, read_json_lines
from ingestion.partners.schema import MESSAGE_SEND_COLUMNS
from ingestion.partners.validation import QUARANTINE_COLUMNS, validate_rows
from warehouse.load import LoadResult

SENDS_TABLE = "message_sends"
SOURCE_KIND = "message_sends"
# The export promises E.164 (leading +), so no default country applies: phonenumbers'
# "unknown region" makes a number without its country code invalid instead of guessed.
_NO_DEFAULT_REGION = "ZZ"


def _str(value: object) -> str | None:
    return None if is_missing(value) else str(value).strip()


def _holdout(value: object) -> tuple[bool | None, str | None]:
    if isinstance(value, bool):
        return value, None
    if is_missing(value):
        return None, "holdout is missing"
    return None, f"holdout {value!r} is not true/false"


def build_sends(content: bytes, name: str, *, id_key: bytes) -> tuple[pd.DataFrame, pd.DataFrame]:
    """sends.jsonl bytes → (rows of `MESSAGE_SEND_COLUMNS`, quarantine rows); `id_key`:
    the installation's customer-id key."""
    records, rejects = read_json_lines(content, name)
    planned, planned_errors = parse_utc_timestamps(r.get("planned_at") for _, r in records)
    holdouts = [_holdout(r.get("holdout")) for _, r in records]
    raw_phone = pd.Series([_str(r.get("customer_phone")) for _, r in records], dtype=object)
    phones = identity.normalize_phones(raw_phone, _NO_DEFAULT_REGION)
    sends = pd.DataFrame(
        {
            "message_id": [_str(r.get("message_id")) for _, r in records],
            "business_id": [_str(r.get("business_id")) for _, r in records],
            "phone_e164": phones["phone_e164"].to_numpy(dtype=object),
            "customer_id": identity.customer_id(phones["phone_e164"], id_key).to_numpy(
                dtype=object
            ),
            "trigger": [(_str(r.get("trigger")) or "").lower() or None for _, r in records],
            "campaign_id": [_str(r.get("campaign_id")) for _, r in records],
            "channel": [(_str(r.get("channel")) or "").lower() or None for _, r in records],
            "holdout": pd.array([h for h, _ in holdouts], dtype="boolean"),
            "planned_at": planned,
            "offer_id": [_str(r.get("offer_id")) for _, r in records],
            "provider_message_id": [_str(r.get("provider_message_id")) for _, r in records],
        },
        columns=list(MESSAGE_SEND_COLUMNS),
    )
    phone_errors = [
        None if error is None else f"phone {value!r}: {error}"
        for value, error in zip(raw_phone, phones["error"], strict=True)
    ]
    good, bad = validate_rows(
        sends,
        "message_sends",
        source=SOURCE_KIND,
        row_ref=pd.Series([ref for ref, _ in records], dtype=object),
        raw_row=pd.Series(
            [json.dumps(r, ensure_ascii=False, default=str) for _, r in records], dtype=object
        ),
        parse_errors={
            "phone_e164": phone_errors,
            "planned_at": planned_errors,
            "holdout": [e for _, e in holdouts],
        },
    )
    good = good.reset_index(drop=True)
    good["holdout"] = good["holdout"].astype(bool)
    rejected = pd.DataFrame(rejects, columns=["row_ref", "field", "reason", "raw_row"])
    rejected.insert(0, "source_kind", SOURCE_KIND)
    quarantine = pd.concat([q for q in (rejected, bad) if len(q)] or [rejected], ignore_index=True)
    return good, quarantine[list(QUARANTINE_COLUMNS)]


def load_message_sends(client: Client, sends_file: Path, *, id_key: bytes) -> LoadResult:
    """Load `messages/sends.jsonl` as one idempotent batch into `raw.message_sends`
    (`id_key`: the installation's customer-id key).

    Raises FeedFormatError (naming the file) when it is not JSON lines at all, and
    OSError when it cannot be read.
    """
    return load_whole_file(
        client, SENDS_TABLE, sends_file, prefix="messages",
        build=lambda content, name: build_sends(content, name, id_key=id_key),
    )  # fmt: skip
