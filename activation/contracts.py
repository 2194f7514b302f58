"""The contract between the planner and delivery: what one planned action is.

The planner (activation/planner.py) decides *who gets what, when, through which channel*
and writes rows of these shapes; the outbox (activation/outbox.py) stores them by
`idempotency_key` and delivery (activation/delivery.py) carries them out once per key,
within the per-provider crash guarantees its docstring (and README "Delivery
guarantees") state.

`idempotency_key` is derived from (trigger, customer, occasion) only — never from the
run, the time of planning or the channel — so the same birthday, appointment or accrual
can never produce two actions, however often planning runs.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field


def _as_utc(value: datetime) -> datetime:
    # The warehouse returns DateTime64(3, 'UTC') values without their zone: a naive
    # timestamp here is UTC by contract, and everything leaving this module is aware.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


class Channel(StrEnum):
    whatsapp = "whatsapp"
    telegram = "telegram"
    sms = "sms"


class State(StrEnum):
    """Outbox states: planned → sending → sent | failed | skipped; dead after N attempts."""

    planned = "planned"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    skipped = "skipped"
    dead = "dead"


def idempotency_key(trigger: str, business_id: str, customer_id: str, occasion: str) -> str:
    """Stable key of one action: sha256 of its identity, 32 hex chars.

    `occasion` names the event the action is about: `birthday:2026`,
    `appointment:<appointment_id>:24h`, `winback:2026-W47`, `offer:<offer_id>`,
    `accrual:<partner_id>:<event_id>`.
    """
    raw = "\x1f".join((trigger, business_id, customer_id, occasion))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


class PlannedMessage(BaseModel):
    """One message to one customer (or one holdout record, never sent)."""

    idempotency_key: str
    campaign_id: str = Field(description="trigger, business and period: winback-B00001-2026-W47")
    trigger: str
    business_id: str
    customer_id: str
    phone_e164: str
    channel: Channel
    recipient: str = Field(description="E.164 phone (WhatsApp, SMS) or Telegram chat id")
    template: str = Field(description="template name at the provider (WhatsApp) or in YAML")
    language: str = "ru"
    variables: dict[str, str] = Field(default_factory=dict)
    text: str = Field(description="the rendered message (SMS/Telegram body, preview)")
    send_at: UtcDatetime = Field(description="UTC; already moved out of quiet hours")
    expires_at: UtcDatetime = Field(description="UTC; not sent after this (occasion passed)")
    holdout: bool = False
    priority: int = 0
    offer_id: str | None = None


class PlannedAccrual(BaseModel):
    """One cashback accrual to push to the loyalty ledger."""

    idempotency_key: str
    campaign_id: str
    business_id: str
    customer_id: str
    phone_e164: str
    amount: Decimal = Field(decimal_places=2)
    currency: str
    source_event_id: str = Field(description="partner_id:event_id the accrual comes from")
    created_at: UtcDatetime
