"""Provider settings for delivery: endpoints, tokens, rate limits, retry and lease policy.

Defaults point at 127.0.0.1:8791–8794 (where `simulation.providers` serves its stand-ins)
so a fresh checkout never contacts a real provider. This package never reads the
environment: `revisit.settings.Settings` extends this model, so every field here is also
the setting `REVISIT_<FIELD>` (e.g. `REVISIT_WHATSAPP_BASE_URL`), and
`Settings.providers()` hands delivery this model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

TelegramCrashPolicy = Literal["resend_once", "at_most_once"]


class ProvidersConfig(BaseModel):
    """Everything delivery needs to reach providers. Rates are messages per second; None = off."""

    # WhatsApp Cloud API: POST {base}/{version}/{phone_number_id}/messages
    whatsapp_base_url: str = "http://127.0.0.1:8791"
    whatsapp_api_version: str = "v21.0"
    whatsapp_phone_number_id: str = "106540352242922"
    whatsapp_token: SecretStr = SecretStr("dev-whatsapp-token")
    whatsapp_rate_per_s: float | None = Field(default=80.0, description="Cloud API default 80/s")
    # Telegram Bot API: POST {base}/bot{token}/sendMessage
    telegram_base_url: str = "http://127.0.0.1:8792"
    telegram_bot_token: SecretStr = SecretStr("123456:dev-telegram-bot-token")
    telegram_rate_per_s: float | None = 30.0
    # The Bot API has no idempotency key and no status webhooks, so a send whose outcome
    # was lost (crash between send and commit, timeout, dropped connection) cannot be
    # checked. `resend_once`: resend it once (at most one duplicate), then dead-letter it;
    # `at_most_once`: never resend it, dead-letter it for a human (reason `ambiguous`).
    telegram_crash_policy: TelegramCrashPolicy = "resend_once"
    # Generic SMS gateway: POST {base}/v1/messages
    sms_base_url: str = "http://127.0.0.1:8793"
    sms_token: SecretStr = SecretStr("dev-sms-token")
    sms_sender: str = "Revisit"
    sms_rate_per_s: float | None = 50.0
    # Loyalty ledger: POST {base}/v1/accruals with Idempotency-Key
    ledger_base_url: str = "http://127.0.0.1:8794"
    ledger_token: SecretStr = SecretStr("dev-ledger-token")
    ledger_rate_per_s: float | None = 100.0

    # HTTP
    http_timeout_s: float = Field(default=10.0, gt=0, description="read/write timeout per request")
    http_connect_timeout_s: float = Field(default=5.0, gt=0)
    # Retries inside one run (per row), then the row goes back to the outbox as `failed`.
    max_attempts_per_run: int = Field(default=4, ge=1)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    max_retry_wait_s: float = Field(
        default=60.0, ge=0, description="a longer Retry-After ends this run's tries for the row"
    )
    # Across runs: a row claimed this many times without success becomes `dead`.
    max_total_attempts: int = Field(default=6, ge=1)
    retry_later_s: float = Field(default=60.0, ge=0, description="base delay for the next run")
    # Claims: a claimed row belongs to the run for lease_s; a crashed run's rows are
    # re-claimed after that (with the same idempotency key).
    lease_s: float = Field(default=300.0, gt=0)
    claim_batch: int = Field(default=256, ge=1)
    concurrency: int = Field(default=64, ge=1)
    rate_burst: int = Field(
        default=2, ge=1, description="limiter bucket: 2 absorbs late wake-ups (1 runs ~7% slow)"
    )

    def without_rate_limits(self) -> ProvidersConfig:
        """The same config with every provider rate limit off (benchmarks, bulk tests)."""
        return self.model_copy(
            update={
                "whatsapp_rate_per_s": None,
                "telegram_rate_per_s": None,
                "sms_rate_per_s": None,
                "ledger_rate_per_s": None,
            }
        )
