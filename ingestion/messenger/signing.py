"""How each provider authenticates its webhooks (shared by the receiver, tests and tools).

- WhatsApp Cloud API: ``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the raw body
  keyed with the app secret.
- Generic SMS gateway: ``X-Signature: sha256=<hex>``, the same scheme with the SMS secret.
- Telegram Bot API: ``X-Telegram-Bot-Api-Secret-Token: <secret>``, the token given to
  ``setWebhook`` (no body signature).
"""

from __future__ import annotations

import hashlib
import hmac

WHATSAPP_SIGNATURE_HEADER = "X-Hub-Signature-256"
SMS_SIGNATURE_HEADER = "X-Signature"
TELEGRAM_TOKEN_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def hmac_signature(secret: str | bytes, body: bytes) -> str:
    """The header value ``sha256=<hex HMAC-SHA256 of body>``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def signature_matches(key: bytes, body: bytes, header_value: bytes) -> bool:
    """Constant-time check of a ``sha256=<hex>`` header value against the body."""
    if not header_value.startswith(b"sha256="):
        return False
    expected = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(expected, header_value[7:].strip().lower())


def signed_headers(provider: str, secret: str, body: bytes) -> dict[str, str]:
    """Headers a genuine provider would send with `body` (content type included)."""
    headers = {"Content-Type": "application/json"}
    if provider == "whatsapp":
        headers[WHATSAPP_SIGNATURE_HEADER] = hmac_signature(secret, body)
    elif provider == "sms":
        headers[SMS_SIGNATURE_HEADER] = hmac_signature(secret, body)
    elif provider == "telegram":
        headers[TELEGRAM_TOKEN_HEADER] = secret
    else:
        raise ValueError(f"unknown provider {provider!r}")
    return headers
