"""Provider clients (async httpx): WhatsApp Cloud API, Telegram Bot API, SMS, loyalty ledger.

`Providers.from_config(config)` builds one client per provider; `providers.for_item(item)`
picks the client for an outbox row (messages by channel, accruals → ledger).
"""

from __future__ import annotations

from dataclasses import dataclass

from activation.config import ProvidersConfig
from activation.providers.base import (
    AlreadyDelivered,
    Attempt,
    OutboxItem,
    Provider,
    SendResult,
    parse_retry_after,
)
from activation.providers.clients import (
    LedgerProvider,
    SmsProvider,
    TelegramProvider,
    WhatsAppProvider,
)

__all__ = [
    "AlreadyDelivered",
    "Attempt",
    "LedgerProvider",
    "OutboxItem",
    "Provider",
    "Providers",
    "ProvidersConfig",
    "SendResult",
    "SmsProvider",
    "TelegramProvider",
    "WhatsAppProvider",
    "parse_retry_after",
]


@dataclass
class Providers:
    """One client per provider. Create inside the event loop that uses it; `aclose()` after."""

    whatsapp: WhatsAppProvider
    telegram: TelegramProvider
    sms: SmsProvider
    ledger: LedgerProvider

    @classmethod
    def from_config(cls, config: ProvidersConfig) -> Providers:
        return cls(
            WhatsAppProvider(config),
            TelegramProvider(config),
            SmsProvider(config),
            LedgerProvider(config),
        )

    def for_item(self, item: OutboxItem) -> Provider:
        if item.kind == "accrual":
            return self.ledger
        return {"whatsapp": self.whatsapp, "telegram": self.telegram, "sms": self.sms}[item.channel]

    async def aclose(self) -> None:
        for client in (self.whatsapp, self.telegram, self.sms, self.ledger):
            await client.aclose()
