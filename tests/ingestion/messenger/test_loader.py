"""Spool → raw.messenger_events on the real embedded ClickHouse, through the real receiver."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import warehouse
from ingestion.messenger.loader import load_spool
from ingestion.messenger.signing import signed_headers
from ingestion.messenger.spool import LOADED_DIR, OPEN_SUFFIX, encode_record, read_segment
from tests.ingestion.messenger.conftest import (
    SECRETS,
    body_bytes,
    make_config,
    raw_post_many,
    sms_report,
    start_receiver,
    tg_block,
    tg_message,
    wa_inbound,
    wa_notification,
    wa_status,
)

SECRET_OF = {
    "whatsapp": SECRETS["whatsapp_app_secret"],
    "telegram": SECRETS["telegram_secret_token"],
    "sms": SECRETS["sms_webhook_secret"],
}


def _request(provider: str, payload: dict) -> tuple[str, bytes, dict[str, str]]:
    body = body_bytes(payload)
    return f"/webhooks/{provider}", body, signed_headers(provider, SECRET_OF[provider], body)


def _webhooks() -> list[tuple[str, bytes, dict[str, str]]]:
    statuses = wa_notification(
        [
            wa_status("wamid.S1", "delivered", message_id="msg-1"),
            wa_status("wamid.S1", "read", message_id="msg-1", ts=1735732860),
        ]
    )
    failed = wa_notification(
        [
            wa_status(
                "wamid.S2", "failed", message_id="msg-2", errors=[{"code": 131026, "title": "x"}]
            ),
            wa_status("wamid.S3", "delivered", message_id="msg-3", phone="12"),  # bad phone
        ]
    )
    return [
        _request("whatsapp", statuses),
        _request("whatsapp", statuses),  # the provider's retry: the same events again
        _request("whatsapp", failed),
        _request("whatsapp", wa_notification(messages=[wa_inbound("wamid.IN1", " Stop! ")])),
        _request(
            "whatsapp",
            wa_notification(messages=[wa_inbound("wamid.IN2", "Спасибо", context_id="wamid.S1")]),
        ),
        _request("telegram", tg_block(101)),
        _request("telegram", tg_message(102, "СТОП", reply_to=555)),
        _request("telegram", {"update_id": 103, "edited_message": {"text": "?"}}),  # unsupported
        _request("sms", sms_report("dlr-1", "DELIVRD", message_id="msg-9")),
    ]


def _rows(client, sql: str) -> list[tuple]:
    return [tuple(r) for r in client.query(sql).result_rows]


def test_receiver_spool_loader_end_to_end(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    root = spool_dir / "webhooks"
    receiver = start_receiver(make_config(root))
    try:
        statuses = asyncio.run(raw_post_many(receiver.base_url, _webhooks(), connections=1))
    finally:
        receiver.stop()
    assert statuses == [200] * 9
    # Every accepted request is in the spool, the retry included.
    spooled = [i for seg in root.glob("*.closed.jsonl") for i in read_segment(seg)]
    assert len(spooled) == 9

    # A receiver that died mid-write left an open segment with a torn tail.
    good = encode_record("sms", body_bytes(sms_report("dlr-2", "failed", message_id="m-x")), 1)
    (root / f"wh-00000000T000000000000Z-1-dead-000001{OPEN_SUFFIX}").write_bytes(good + good[:30])

    with warehouse.connect(f"chdb://{tmp_path / 'warehouse'}") as client:
        results = load_spool(client, spool_dir)
        assert len(results) == 2 and not any(r.skipped for r in results)
        # 2 + 2 (retry) + 1 + 2 inbound + 2 telegram + 1 sms + 1 recovered sms = 11 rows.
        assert sum(r.rows_loaded for r in results) == 11
        assert sum(r.rows_quarantined for r in results) == 2

        events = {
            (p, e): rest
            for p, e, *rest in _rows(
                client,
                "SELECT provider, event_id, event_type, status, message_id, provider_message_id,"
                " recipient, error_code, text, toUnixTimestamp(occurred_at)"
                " FROM raw.messenger_events FINAL",
            )
        }
        # Retries collapse to one row per (provider, event_id).
        assert len(events) == 9
        assert _rows(client, "SELECT uniqExact(provider, event_id) FROM raw.messenger_events") == [
            (9,)
        ]
        assert events["whatsapp", "wamid.S1:read"][:6] == [
            "status", "read", "msg-1", "wamid.S1", "+79161234567", None,
        ]  # fmt: skip
        assert events["whatsapp", "wamid.S1:read"][7] == 1735732860
        assert events["whatsapp", "wamid.S2:failed"][1] == "failed"
        assert events["whatsapp", "wamid.S2:failed"][5] == "131026"
        assert events["whatsapp", "wamid.IN1"][:2] == ["inbound", "opt_out"]
        assert events["whatsapp", "wamid.IN2"][:2] == ["inbound", "replied"]
        assert events["whatsapp", "wamid.IN2"][3] == "wamid.S1"
        assert events["telegram", "101"][:2] == ["block", "opt_out"]
        assert events["telegram", "101"][4] == "5001"
        assert events["telegram", "102"][:2] == ["inbound", "opt_out"]
        assert events["telegram", "102"][3] == "555"
        assert events["sms", "dlr-1"][:5] == ["status", "delivered", "msg-9", None, "+79161234567"]
        assert events["sms", "dlr-2"][1] == "failed"

        quarantine = _rows(
            client,
            "SELECT row_ref, field, source_table FROM raw.quarantine"
            " WHERE source_kind = 'messenger_webhook' ORDER BY row_ref",
        )
        assert quarantine == [
            ("3/entry0.change0.statuses1", "recipient_id", "messenger_events"),
            ("8", "update", "messenger_events"),
        ]

        # Exactly once: a second run finds nothing to do, counts unchanged.
        assert load_spool(client, spool_dir) == []
        assert _rows(client, "SELECT count() FROM raw.messenger_events FINAL") == [(9,)]

        # Killed between load and move: the segment is back among the closed ones.
        loaded = sorted((root / LOADED_DIR).iterdir())
        assert len(loaded) == 2
        shutil.copy(loaded[0], root / loaded[0].name)
        again = load_spool(client, spool_dir)
        assert [r.skipped for r in again] == [True]
        assert _rows(client, "SELECT count() FROM raw.messenger_events FINAL") == [(9,)]
        assert _rows(client, "SELECT count() FROM raw.quarantine") == [(2,)]
        assert not (root / loaded[0].name).exists()
