"""What ingestion needs from outside, as small models the front door fills in.

`revisit.settings` composes these from the environment; nothing in `ingestion` reads
the environment itself. Kept free of heavy imports: the webhook receiver's processes
load this module and nothing of pandas or the warehouse.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from ingestion.messenger.spool import DEFAULT_MAX_AGE_S, DEFAULT_MAX_BYTES


class CrmApiConfig(BaseModel):
    """Where a CRM's REST API is and where its sync cursors are kept.

    `base_url` None: no CRM API (a business that only sends files); the sync is skipped.
    `url_setting` names where the URL came from, so an unreachable API says what to fix.
    """

    model_config = ConfigDict(frozen=True)

    base_url: str | None
    token: str
    cursor_store_dsn: str  # SQLAlchemy URL of the state store
    url_setting: str = "REVISIT_CRM_API_URL"
    attempts: int = 6


class KafkaConfig(BaseModel):
    """A Kafka topic the receiver appends webhooks to and the loader reads them from.

    `options` are extra librdkafka settings for both ends (e.g. ``security.protocol``,
    ``sasl.*``). `delivery_timeout_ms` bounds how long a webhook request waits for the
    broker's acknowledgement before it is answered 503 (the provider retries).
    """

    model_config = ConfigDict(frozen=True)

    bootstrap: str
    topic: str = "revisit.messenger-webhooks"
    group: str = "revisit-messenger-loader"
    delivery_timeout_ms: int = 10_000
    # Requests arriving within this window share one produce request (and one ack).
    linger_ms: float = 2.0
    batch_max: int = 5_000
    options: dict[str, str] = {}


class ReceiverConfig(BaseModel):
    """Everything the webhook receiver needs: where it listens, the providers' secrets, where
    it spools."""

    model_config = ConfigDict(frozen=True)

    spool_root: Path
    whatsapp_app_secret: str
    whatsapp_verify_token: str
    telegram_secret_token: str
    sms_webhook_secret: str
    host: str = "127.0.0.1"
    port: int = 8780
    max_body_bytes: int = 1024 * 1024
    segment_max_bytes: int = DEFAULT_MAX_BYTES
    segment_max_age_s: float = DEFAULT_MAX_AGE_S
    # The spool's writer thread needs the GIL back when its fsync returns; while the event
    # loop is busy, CPython hands it over only every switch interval (5 ms by default),
    # which would lengthen every group commit. Set for the worker process at start (None:
    # leave the interpreter's setting).
    gil_switch_interval_s: float | None = 0.0005
    # Set: webhooks go to this Kafka topic instead of the spool (ingestion.messenger.kafka).
    kafka: KafkaConfig | None = None
