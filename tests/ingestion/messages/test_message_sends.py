"""Historical trigger sends (`messages/sends.jsonl`) into raw.message_sends."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

import warehouse
from ingestion.identity import customer_id
from ingestion.messages import load_message_sends
from ingestion.partners import FeedFormatError
from revisit.settings import DEV_ID_KEY, Settings


def send(message_id: str, **fields: object) -> dict[str, object]:
    return {
        "message_id": message_id,
        "business_id": "b1",
        "customer_phone": "+79161234567",
        "trigger": "winback",
        "campaign_id": "c-1",
        "channel": "whatsapp",
        "holdout": False,
        "planned_at": "2024-03-01T09:00:00Z",
        "offer_id": None,
        "provider_message_id": f"wamid.{message_id}",
        **fields,
    }


def write(path: Path, records: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "not json\n")
    return path


def test_sends_load_once_with_bad_rows_in_quarantine(settings: Settings, tmp_path: Path) -> None:
    sends = write(
        tmp_path / "src" / "messages" / "sends.jsonl",
        [
            send("m1", offer_id="OFF-1", trigger="partner_offer"),
            send("m2", holdout=True, provider_message_id=None, channel="sms"),
            send("m3", customer_phone="89161234567"),  # not E.164: no country to assume
            send("m4", planned_at="yesterday"),
            send("m5", trigger="spam"),
            send("m6", holdout="maybe"),
        ],
    )
    with warehouse.connect(settings.warehouse_dsn) as client:
        first = load_message_sends(client, sends, id_key=DEV_ID_KEY)
        again = load_message_sends(client, sends, id_key=DEV_ID_KEY)
        rows = client.query(
            "SELECT message_id, phone_e164, customer_id, trigger, channel, holdout, planned_at,"
            " offer_id, provider_message_id FROM raw.message_sends FINAL ORDER BY message_id"
        ).result_rows
        bad = dict(
            (ref, (field, reason))
            for ref, field, reason in client.query(
                "SELECT row_ref, field, reason FROM raw.quarantine "
                "WHERE source_kind = 'message_sends'"
            ).result_rows
        )
        total = client.command("SELECT count() FROM raw.message_sends")
    cid = customer_id(pd.Series(["+79161234567"]), DEV_ID_KEY)[0]
    assert rows == [
        ("m1", "+79161234567", cid, "partner_offer", "whatsapp", False,
         datetime(2024, 3, 1, 9), "OFF-1", "wamid.m1"),
        ("m2", "+79161234567", cid, "winback", "sms", True, datetime(2024, 3, 1, 9), None, None),
    ]  # fmt: skip
    assert (first.rows_loaded, first.rows_quarantined) == (2, 5)
    assert (again.skipped, total) == (True, 2)
    assert bad["line 3"][0] == "phone_e164" and "'89161234567'" in bad["line 3"][1]
    assert bad["line 4"][0] == "planned_at" and "'yesterday'" in bad["line 4"][1]
    assert bad["line 5"][0] == "trigger" and "spam" in bad["line 5"][1]
    assert bad["line 6"] == ("holdout", "holdout 'maybe' is not true/false")
    assert bad["line 7"][1].startswith("not valid JSON")


def test_unreadable_sends_file_fails_naming_it(settings: Settings, tmp_path: Path) -> None:
    sends = tmp_path / "sends.jsonl"
    sends.write_bytes(b"\xff\xfe\x00garbage")
    with (
        warehouse.connect(settings.warehouse_dsn) as client,
        pytest.raises(FeedFormatError, match=r"sends\.jsonl: not valid utf-8-sig text"),
    ):
        load_message_sends(client, sends, id_key=DEV_ID_KEY)
