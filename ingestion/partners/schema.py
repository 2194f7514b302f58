"""Canonical records of the partner ecosystem and the message history.

These pydantic models are the contract between the adapters/loaders and the raw
tables (`raw.partner_events`, `raw.partner_offers`, `raw.message_sends`, DDL in
`warehouse.schema.RAW_TABLES`). Loaders build DataFrames with exactly the columns
listed in the `*_COLUMNS` tuples below; the models document types and meaning and
validate single records (e.g. in tests or an API) — bulk loads validate through the
declarative suites of `ingestion.quality` instead of row-by-row model validation.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

EVENT_TYPES: tuple[str, ...] = ("target_action", "accrual", "reversal", "redemption")
TRIGGERS: tuple[str, ...] = ("birthday", "reminder", "winback", "partner_offer", "personal_offer")
CHANNELS: tuple[str, ...] = ("whatsapp", "telegram", "sms")

Money = Annotated[Decimal, Field(max_digits=18, decimal_places=2)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
E164 = Annotated[str, Field(pattern=r"^\+[1-9]\d{6,14}$")]


class PartnerEvent(BaseModel):
    """One partner event after its adapter (`raw.partner_events`, key partner_id+event_id).

    - `target_action`: the referred client did what the offer pays for (visit, purchase);
    - `accrual`: cashback credited to the client; `reversal`: an accrual taken back;
    - `redemption`: the client spent cashback.
    `amount` is in major units of `currency`; `occurred_at` is UTC; `raw_payload` is the
    source row as received (JSON text), kept for audit and re-parsing.
    """

    model_config = ConfigDict(frozen=True)

    event_id: str = Field(min_length=1)
    partner_id: str = Field(min_length=1)
    event_type: Literal["target_action", "accrual", "reversal", "redemption"]
    phone_e164: E164
    customer_id: str
    amount: Money
    currency: Currency
    occurred_at: AwareDatetime
    offer_id: str | None = None
    raw_payload: str


class OfferAudience(BaseModel):
    min_age: int | None = Field(default=None, ge=0, le=130)
    max_age: int | None = Field(default=None, ge=0, le=130)
    gender: Literal["f", "m"] | None = None


class PartnerOffer(BaseModel):
    """A partner offer ("lot", `raw.partner_offers`, key offer_id): the publisher pays
    `reward_per_client` to a distributor for each client it sends; the client gets
    `discount_pct` off and/or `cashback_pct` back. `capacity` caps the clients paid for."""

    offer_id: str = Field(min_length=1)
    publisher_business_id: str = Field(min_length=1)
    title: str
    distributor_business_ids: list[str]
    reward_per_client: Money
    discount_pct: Annotated[Decimal, Field(ge=0, le=100)] | None = None
    cashback_pct: Annotated[Decimal, Field(ge=0, le=100)] | None = None
    currency: Currency
    capacity: int | None = Field(default=None, ge=0)
    audience: OfferAudience = OfferAudience()
    valid_from: date
    valid_to: date


class MessageSend(BaseModel):
    """One historical trigger send (`raw.message_sends`, key message_id). Holdout rows
    were planned but deliberately not sent (no provider id): the control group."""

    message_id: str = Field(min_length=1)
    business_id: str = Field(min_length=1)
    phone_e164: E164
    customer_id: str
    trigger: Literal["birthday", "reminder", "winback", "partner_offer", "personal_offer"]
    campaign_id: str | None = None
    channel: Literal["whatsapp", "telegram", "sms"]
    holdout: bool
    planned_at: datetime
    offer_id: str | None = None
    provider_message_id: str | None = None


# Column order of the frames handed to warehouse.load.load_batch.
PARTNER_EVENT_COLUMNS: tuple[str, ...] = (
    "event_id", "partner_id", "event_type", "phone_e164", "customer_id", "amount",
    "currency", "occurred_at", "offer_id", "raw_payload",
)  # fmt: skip
PARTNER_OFFER_COLUMNS: tuple[str, ...] = (
    "offer_id", "publisher_business_id", "title", "distributor_business_ids",
    "reward_per_client", "discount_pct", "cashback_pct", "currency", "capacity",
    "audience_min_age", "audience_max_age", "audience_gender", "valid_from", "valid_to",
)  # fmt: skip
MESSAGE_SEND_COLUMNS: tuple[str, ...] = (
    "message_id", "business_id", "phone_e164", "customer_id", "trigger", "campaign_id",
    "channel", "holdout", "planned_at", "offer_id", "provider_message_id",
)  # fmt: skip
