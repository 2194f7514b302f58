"""The receiver over a real socket: authentication, durability before the answer, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ingestion.messenger.receiver import ReceiverConfig, WebhookApp
from ingestion.messenger.signing import hmac_signature, signed_headers
from ingestion.messenger.spool import CLOSED_SUFFIX, OPEN_SUFFIX, SpoolRecord, read_segment
from tests.ingestion.messenger.conftest import (
    SECRETS,
    RunningReceiver,
    body_bytes,
    make_config,
    raw_post_many,
    sms_report,
    tg_block,
    wa_notification,
    wa_status,
)

WA_SECRET = SECRETS["whatsapp_app_secret"]


def spooled_bodies(root: Path) -> list[bytes]:
    bodies = []
    for path in sorted(root.glob("*.jsonl")):
        for item in read_segment(path):
            assert isinstance(item, SpoolRecord), item
            bodies.append(item.body)
    return bodies


def post(receiver: RunningReceiver, provider: str, body: bytes, headers: dict[str, str]):
    return httpx.post(f"{receiver.base_url}/webhooks/{provider}", content=body, headers=headers)


def test_verification_challenge(receiver: RunningReceiver) -> None:
    url = f"{receiver.base_url}/webhooks/whatsapp"
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": SECRETS["whatsapp_verify_token"],
        "hub.challenge": "1158201444",
    }
    ok = httpx.get(url, params=params)
    assert ok.status_code == 200
    assert ok.text == "1158201444"
    assert httpx.get(url, params={**params, "hub.verify_token": "wrong"}).status_code == 403
    assert httpx.get(url, params={**params, "hub.mode": "unsubscribe"}).status_code == 403
    assert httpx.get(url).status_code == 403


def test_signed_webhook_is_on_disk_before_the_answer(receiver: RunningReceiver) -> None:
    body = body_bytes(wa_notification([wa_status("wamid.A1", "delivered")]))
    response = post(receiver, "whatsapp", body, signed_headers("whatsapp", WA_SECRET, body))
    assert response.status_code == 200
    # Read the open segment right after the 200: the record must already be in the file.
    open_segments = list(receiver.config.spool_root.glob(f"*{OPEN_SUFFIX}"))
    assert len(open_segments) == 1
    records = list(read_segment(open_segments[0]))
    assert len(records) == 1
    assert isinstance(records[0], SpoolRecord)
    assert records[0].provider == "whatsapp"
    assert records[0].body == body


def test_forged_missing_and_tampered_signatures_store_nothing(receiver: RunningReceiver) -> None:
    body = body_bytes(wa_notification([wa_status("wamid.B1", "read")]))
    good = signed_headers("whatsapp", WA_SECRET, body)
    forged = {"X-Hub-Signature-256": hmac_signature("not-the-secret", body)}
    assert post(receiver, "whatsapp", body, forged).status_code == 403
    assert post(receiver, "whatsapp", body, {"Content-Type": "application/json"}).status_code == 401
    assert post(receiver, "whatsapp", body, {"X-Hub-Signature-256": "md5=abc"}).status_code == 403
    tampered = bytearray(body)
    position = body.index(b"read")
    tampered[position] = ord("R")
    assert post(receiver, "whatsapp", bytes(tampered), good).status_code == 403
    assert spooled_bodies(receiver.config.spool_root) == []
    # The untouched body with the same headers is accepted: the rejections were the bytes.
    assert post(receiver, "whatsapp", body, good).status_code == 200
    assert spooled_bodies(receiver.config.spool_root) == [body]


def test_telegram_secret_token(receiver: RunningReceiver) -> None:
    body = body_bytes(tg_block(777))
    token = SECRETS["telegram_secret_token"]
    bad = {"X-Telegram-Bot-Api-Secret-Token": token + "x"}
    assert post(receiver, "telegram", body, bad).status_code == 403
    assert post(receiver, "telegram", body, {}).status_code == 401
    assert spooled_bodies(receiver.config.spool_root) == []
    ok = post(receiver, "telegram", body, signed_headers("telegram", token, body))
    assert ok.status_code == 200
    assert spooled_bodies(receiver.config.spool_root) == [body]


def test_sms_signature(receiver: RunningReceiver) -> None:
    body = body_bytes(sms_report("dlr-1"))
    secret = SECRETS["sms_webhook_secret"]
    wrong_key = {"X-Signature": hmac_signature(WA_SECRET, body)}
    assert post(receiver, "sms", body, wrong_key).status_code == 403
    assert post(receiver, "sms", body, {}).status_code == 401
    assert spooled_bodies(receiver.config.spool_root) == []
    assert post(receiver, "sms", body, signed_headers("sms", secret, body)).status_code == 200
    assert spooled_bodies(receiver.config.spool_root) == [body]


def test_signed_malformed_json_is_400_and_not_stored(receiver: RunningReceiver) -> None:
    for body in (b'{"entry": [', b"[1, 2]", b"\xff\xfe"):
        headers = signed_headers("whatsapp", WA_SECRET, body)
        assert post(receiver, "whatsapp", body, headers).status_code == 400
    assert spooled_bodies(receiver.config.spool_root) == []


def test_routing_errors(receiver: RunningReceiver) -> None:
    assert httpx.get(f"{receiver.base_url}/webhooks/unknown").status_code == 404
    assert httpx.get(f"{receiver.base_url}/webhooks/sms").status_code == 405
    health = httpx.get(f"{receiver.base_url}/webhooks/health").json()
    assert health["status"] == "ok"


def test_concurrent_burst_all_spooled_and_clean_shutdown_closes(
    receiver: RunningReceiver,
) -> None:
    bodies = [body_bytes(wa_notification([wa_status(f"wamid.C{i}", "sent")])) for i in range(300)]

    requests = [("/webhooks/whatsapp", b, signed_headers("whatsapp", WA_SECRET, b)) for b in bodies]
    assert asyncio.run(raw_post_many(receiver.base_url, requests)) == [200] * len(bodies)
    assert sorted(spooled_bodies(receiver.config.spool_root)) == sorted(bodies)
    receiver.stop()
    root = receiver.config.spool_root
    assert list(root.glob(f"*{OPEN_SUFFIX}")) == []
    closed = list(root.glob(f"*{CLOSED_SUFFIX}"))
    assert len(closed) == 1
    assert sorted(spooled_bodies(root)) == sorted(bodies)


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_in_a_subprocess_closes_its_segments_on_sigterm(tmp_path: Path, workers: int) -> None:
    """`python -m revisit.webhook_receiver` (the `serve` path, one or several worker processes on
    one socket): every worker accepts, and SIGTERM closes every worker's segment."""
    env = {
        **os.environ,
        "REVISIT_DATA_DIR": str(tmp_path),
        "REVISIT_SMS_WEBHOOK_SECRET": "sub-secret",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "revisit.webhook_receiver", "--host", "127.0.0.1", "--port", "0",
         "--workers", str(workers)],
        cwd=Path(__file__).resolve().parents[3],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    bodies = [body_bytes(sms_report(f"dlr-sub-{i}")) for i in range(10)]
    pids: set[int] = set()
    try:
        assert process.stdout is not None
        base = f"http://127.0.0.1:{int(process.stdout.readline().split()[1])}"
        deadline = time.monotonic() + 60
        while len(pids) < workers:  # each connection lands on a worker the kernel picks
            assert time.monotonic() < deadline, f"only workers {pids} answered"
            pids.add(httpx.get(f"{base}/webhooks/health", timeout=30).json()["pid"])
        for body in bodies:
            response = httpx.post(
                f"{base}/webhooks/sms",
                content=body,
                headers=signed_headers("sms", "sub-secret", body),
                timeout=30,
            )
            assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal after its graceful shutdown.
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    assert len(pids) == workers
    root = tmp_path / "spool" / "webhooks"
    assert list(root.glob(f"*{OPEN_SUFFIX}")) == []
    assert sorted(spooled_bodies(root)) == sorted(bodies)


def test_answer_waits_for_fdatasync(receiver: RunningReceiver, monkeypatch) -> None:
    """The 200 is sent only after the batch holding the record was fdatasync-ed."""
    synced: list[float] = []
    real_fdatasync = os.fdatasync

    def slow_fdatasync(fd: int) -> None:
        time.sleep(0.3)
        real_fdatasync(fd)
        synced.append(time.monotonic())

    monkeypatch.setattr(os, "fdatasync", slow_fdatasync)
    body = body_bytes(wa_notification([wa_status("wamid.D1", "sent")]))
    response = post(receiver, "whatsapp", body, signed_headers("whatsapp", WA_SECRET, body))
    answered = time.monotonic()
    assert response.status_code == 200
    assert synced and synced[0] <= answered


def test_start_sets_the_gil_switch_interval_only_when_configured(tmp_path: Path) -> None:
    before = sys.getswitchinterval()

    async def start_and_stop(config: ReceiverConfig) -> float:
        app = WebhookApp(config)
        await app.start()
        await app.stop()
        return sys.getswitchinterval()

    try:
        sys.setswitchinterval(0.005)
        untouched = make_config(tmp_path / "a", gil_switch_interval_s=None)
        assert asyncio.run(start_and_stop(untouched)) == 0.005
        short = make_config(tmp_path / "b", gil_switch_interval_s=0.0005)
        assert asyncio.run(start_and_stop(short)) == pytest.approx(0.0005)
    finally:
        sys.setswitchinterval(before)
