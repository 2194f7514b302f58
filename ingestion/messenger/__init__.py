"""Messenger webhooks: receiver (ASGI + uvicorn), durable spool, spool loader.

- `create_app(config)` / `serve(config)` — the receiver (`receiver.py`), configured by
  `ingestion.config.ReceiverConfig`;
- `Spool`, `recover_open_segments` — the append-only, group-committed spool (`spool.py`);
- `load_spool(client, spool_dir)` — closed segments → ``raw.messenger_events`` (`loader.py`);
- `KafkaSink`, `load_topic(client, kafka_config)` — webhooks through a Kafka topic instead
  of the spool, and the topic → ``raw.messenger_events`` loader (`kafka.py`).

Names are imported lazily so the receiver process does not load pandas or the warehouse.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ReceiverConfig": "receiver",  # defined in ingestion.config
    "WebhookApp": "receiver",
    "create_app": "receiver",
    "serve": "receiver",
    "Spool": "spool",
    "closed_segments": "spool",
    "recover_open_segments": "spool",
    "load_segment": "loader",
    "load_spool": "loader",
    "parse_segment": "loader",
    "KafkaSink": "kafka",
    "load_topic": "kafka",
    "record_events": "events",
    "hmac_signature": "signing",
    "signed_headers": "signing",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
