"""Provider error bodies can echo the recipient: what the outbox keeps of them is masked."""

from __future__ import annotations

from datetime import UTC, datetime

from activation.delivery import _completion
from activation.providers import OutboxItem, ProvidersConfig, SendResult


def test_a_provider_error_echoing_the_phone_is_stored_masked() -> None:
    item = OutboxItem(key="k1", kind="message", channel="whatsapp", payload={}, attempts=1)
    result = SendResult(
        key="k1", provider="whatsapp", ok=False, error_code="131026",
        error_message="Message undeliverable to +7 916 123-45-67 (wa_id 79161234567)",
    )  # fmt: skip
    completion = _completion(item, "t", result, ProvidersConfig(), datetime.now(UTC))
    assert completion.last_error is not None
    assert completion.last_error.startswith("131026: Message undeliverable to ")
    digits = "".join(c for c in completion.last_error if c.isdigit())
    assert "9161234567" not in digits.replace("131026", "", 1)
    assert "***" in completion.last_error
