"""Shared fixtures: a real uvicorn receiver on 127.0.0.1 (ephemeral port) and payload makers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from ingestion.messenger.receiver import ReceiverConfig, WebhookApp, bind_socket, uvicorn_config

SECRETS = {
    "whatsapp_app_secret": "test-wa-secret",
    "whatsapp_verify_token": "test-verify-token",
    "telegram_secret_token": "test-tg-token",
    "sms_webhook_secret": "test-sms-secret",
}


def make_config(spool_root: Path, **overrides: Any) -> ReceiverConfig:
    return ReceiverConfig(spool_root=spool_root, **{**SECRETS, **overrides})


@dataclass
class RunningReceiver:
    base_url: str
    app: WebhookApp
    config: ReceiverConfig
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "receiver did not stop"


def start_receiver(config: ReceiverConfig) -> RunningReceiver:
    app = WebhookApp(config)
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive(), "receiver thread died during start-up"
        assert time.monotonic() < deadline, "receiver did not start"
        time.sleep(0.01)
    return RunningReceiver(f"http://127.0.0.1:{port}", app, config, server, thread)


@pytest.fixture
def spool_root(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "webhooks"


@pytest.fixture
def receiver(spool_root: Path) -> Iterator[RunningReceiver]:
    running = start_receiver(make_config(spool_root))
    try:
        yield running
    finally:
        running.stop()


def body_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def wa_status(
    provider_id: str,
    status: str,
    *,
    message_id: str | None = "msg-1",
    phone: str = "79161234567",
    ts: int = 1735732800,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": provider_id,
        "status": status,
        "timestamp": str(ts),
        "recipient_id": phone,
    }
    if message_id is not None:
        item["biz_opaque_callback_data"] = message_id
    if errors:
        item["errors"] = errors
    return item


def wa_inbound(wamid: str, text: str, *, phone: str = "79161234567", ts: int = 1735732900,
               context_id: str | None = None) -> dict[str, Any]:  # fmt: skip
    item: dict[str, Any] = {
        "from": phone,
        "id": wamid,
        "timestamp": str(ts),
        "type": "text",
        "text": {"body": text},
    }
    if context_id:
        item["context"] = {"from": "15550001111", "id": context_id}
    return item


def wa_notification(
    statuses: list[dict[str, Any]] | None = None, messages: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "123456"},
    }
    if statuses:
        value["statuses"] = statuses
    if messages:
        value["messages"] = messages
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA1", "changes": [{"field": "messages", "value": value}]}],
    }


def tg_message(update_id: int, text: str, *, chat_id: int = 5001, date: int = 1735733000,
               reply_to: int | None = None) -> dict[str, Any]:  # fmt: skip
    message: dict[str, Any] = {
        "message_id": 900 + update_id,
        "from": {"id": chat_id, "is_bot": False, "first_name": "Анна"},
        "chat": {"id": chat_id, "type": "private"},
        "date": date,
        "text": text,
    }
    if reply_to is not None:
        message["reply_to_message"] = {"message_id": reply_to, "chat": {"id": chat_id}}
    return {"update_id": update_id, "message": message}


def tg_block(update_id: int, *, chat_id: int = 5001, new_status: str = "kicked") -> dict[str, Any]:
    return {
        "update_id": update_id,
        "my_chat_member": {
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": chat_id, "is_bot": False},
            "date": 1735733100,
            "old_chat_member": {"user": {"id": 42, "is_bot": True}, "status": "member"},
            "new_chat_member": {"user": {"id": 42, "is_bot": True}, "status": new_status},
        },
    }


def sms_report(report_id: str, status: str = "delivered", *, message_id: str = "msg-9",
               phone: str = "+7 916 123-45-67") -> dict[str, Any]:  # fmt: skip
    return {
        "id": report_id,
        "message_id": message_id,
        "status": status,
        "phone": phone,
        "timestamp": "2025-01-01T12:00:00Z",
    }


async def raw_post_many(
    base_url: str, requests: list[tuple[str, bytes, dict[str, str]]], connections: int = 20
) -> list[int]:
    """POST many requests over `connections` keep-alive sockets; the status of each, in order.

    A minimal HTTP/1.1 client: httpx's async pool is far slower than the receiver under a
    burst, and the test is about the receiver.
    """
    import asyncio
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    statuses = [0] * len(requests)
    queue = list(enumerate(requests))[::-1]

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while queue:
                index, (path, body, headers) = queue.pop()
                head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                writer.write(
                    f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{head}"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                response = await reader.readuntil(b"\r\n\r\n")
                lines = response.split(b"\r\n")
                statuses[index] = int(lines[0].split()[1])
                length = next(
                    int(line.split(b":")[1])
                    for line in lines
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return statuses
