"""Webhook bodies → canonical events, without the warehouse."""

from __future__ import annotations

import pytest

from ingestion.messenger.events import is_stop_text, record_events
from ingestion.messenger.spool import SpoolRecord
from tests.ingestion.messenger.conftest import (
    body_bytes,
    tg_block,
    wa_inbound,
    wa_notification,
    wa_status,
)


def _events(provider: str, payload: object):
    raw = payload if isinstance(payload, bytes) else body_bytes(payload)
    return record_events(SpoolRecord(1, provider, 1735740000000, raw), "1")


@pytest.mark.parametrize(
    ("text", "stop"),
    [
        ("STOP", True),
        (" stop. ", True),
        ("СТОП", True),
        ("стоп!", True),
        ("/stop", True),
        ("Отписаться", True),
        ("stop sending me offers", False),
        ("стопка", False),
        ("", False),
        (None, False),
    ],
)
def test_stop_words(text: str | None, stop: bool) -> None:
    assert is_stop_text(text) is stop


def test_whatsapp_events_and_per_event_rejection() -> None:
    payload = wa_notification(
        [wa_status("wamid.1", "DELIVERED"), wa_status("wamid.2", "read", phone="+1")],
        [wa_inbound("wamid.3", "STOP", context_id="wamid.1")],
    )
    events, rejected = _events("whatsapp", payload)
    assert [(e["event_id"], e["event_type"], e["status"]) for e in events] == [
        ("wamid.1:delivered", "status", "delivered"),
        ("wamid.3", "inbound", "opt_out"),
    ]
    assert events[0]["recipient"] == "+79161234567"
    assert events[0]["message_id"] == "msg-1"
    assert events[1]["provider_message_id"] == "wamid.1"
    assert events[0]["occurred_at"].timestamp() == 1735732800
    assert events[0]["received_at"].timestamp() == 1735740000
    assert [(r.row_ref, r.field) for r in rejected] == [
        ("1/entry0.change0.statuses1", "recipient_id")
    ]


def test_telegram_block_and_unblock() -> None:
    (blocked,), _ = _events("telegram", tg_block(1))
    (back,), _ = _events("telegram", tg_block(2, new_status="member"))
    assert (blocked["event_type"], blocked["status"], blocked["recipient"]) == (
        "block",
        "opt_out",
        "5001",
    )
    assert (back["event_type"], back["status"]) == ("block", "opt_in")


def test_telegram_button_press_carries_our_message_id() -> None:
    update = {
        "update_id": 9,
        "callback_query": {
            "id": "cb1",
            "from": {"id": 5001},
            "message": {"message_id": 77, "chat": {"id": 5001}, "date": 1735733000},
            "data": "msg-42",
        },
    }
    (event,), rejected = _events("telegram", update)
    assert rejected == []
    assert (event["status"], event["message_id"], event["provider_message_id"]) == (
        "clicked",
        "msg-42",
        "77",
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"not json", "body"),
        ({"id": "r1", "status": "delivered", "phone": "+79161234567"}, "timestamp"),
        (
            {"id": "r1", "status": "delivered", "phone": "+79161234567", "timestamp": 1e15},
            "timestamp",
        ),
        ({"status": "delivered", "phone": "+79161234567", "timestamp": 1}, "id"),
    ],
)
def test_bad_sms_reports_are_rejected_with_the_field(payload: object, field: str) -> None:
    events, rejected = _events("sms", payload)
    assert events == []
    assert [r.field for r in rejected] == [field]
