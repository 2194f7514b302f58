"""The four provider clients: WhatsApp Cloud API, Telegram Bot API, SMS gateway, ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from activation.config import ProvidersConfig
from activation.providers.base import (
    Attempt,
    OutboxItem,
    Provider,
    json_or_none,
    parse_retry_after,
)

# Cloud API error codes (developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes).
WHATSAPP_RETRYABLE = {
    1,  # API unknown
    2,  # API service (temporary)
    4,  # API too many calls
    80007,  # rate limit issues
    130429,  # throughput rate limit hit
    131000,  # something went wrong
    131016,  # service unavailable
    131056,  # pair rate limit (same recipient too often)
    133004,  # server temporarily unavailable
    190,  # access token expired: a config fix, then the next run succeeds
}
WHATSAPP_OPT_OUT = {131050}  # user stopped marketing messages from this business
# Entries per page when listing the ledger (the stand-in allows up to 1000).
LEDGER_PAGE_SIZE = 500


class WhatsAppProvider(Provider):
    """Template messages through `POST /{version}/{phone_number_id}/messages`."""

    name = "whatsapp"
    native_idempotency = False

    def __init__(self, config: ProvidersConfig) -> None:
        super().__init__(config, config.whatsapp_base_url, config.whatsapp_rate_per_s)
        self.path = f"/{config.whatsapp_api_version}/{config.whatsapp_phone_number_id}/messages"
        self.auth = {"Authorization": f"Bearer {config.whatsapp_token.get_secret_value()}"}

    def build(self, item: OutboxItem) -> tuple[str, dict[str, str], dict[str, Any]]:
        p = item.payload
        parameters = [
            {"type": "text", "parameter_name": name, "text": value}
            for name, value in (p.get("variables") or {}).items()
        ]
        template: dict[str, Any] = {"name": p["template"], "language": {"code": p["language"]}}
        if parameters:
            template["components"] = [{"type": "body", "parameters": parameters}]
        body = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": p["recipient"],
            "type": "template",
            "template": template,
            "biz_opaque_callback_data": item.key,
        }
        return self.path, self.auth, body

    def classify(self, response: httpx.Response) -> Attempt:
        data = json_or_none(response)
        if response.status_code == 200 and isinstance(data, dict) and data.get("messages"):
            return Attempt("sent", provider_message_id=str(data["messages"][0]["id"]))
        error = (data or {}).get("error", {}) if isinstance(data, dict) else {}
        code = error.get("code")
        message = error.get("message") or response.text[:200]
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if response.status_code == 429 or response.status_code >= 500 or code in WHATSAPP_RETRYABLE:
            return Attempt(
                "retry", error_code=str(code or response.status_code), message=message,
                retry_after_s=retry_after,
            )  # fmt: skip
        return Attempt(
            "permanent", error_code=str(code or response.status_code), message=message,
            opt_out=code in WHATSAPP_OPT_OUT,
        )  # fmt: skip


class TelegramProvider(Provider):
    """`POST /bot<token>/sendMessage`; 403 (blocked/deactivated) is an opt-out."""

    name = "telegram"
    native_idempotency = False

    def __init__(self, config: ProvidersConfig) -> None:
        super().__init__(config, config.telegram_base_url, config.telegram_rate_per_s)
        self.path = f"/bot{config.telegram_bot_token.get_secret_value()}/sendMessage"

    def build(self, item: OutboxItem) -> tuple[str, dict[str, str], dict[str, Any]]:
        p = item.payload
        return self.path, {}, {"chat_id": p["recipient"], "text": p["text"]}

    def classify(self, response: httpx.Response) -> Attempt:
        data = json_or_none(response)
        data = data if isinstance(data, dict) else {}
        if response.status_code == 200 and data.get("ok"):
            return Attempt("sent", provider_message_id=str(data["result"]["message_id"]))
        status = int(data.get("error_code") or response.status_code)
        description = str(data.get("description") or response.text[:200])
        if status == 429:
            retry_after = (data.get("parameters") or {}).get("retry_after")
            return Attempt(
                "retry", error_code="429", message=description,
                retry_after_s=parse_retry_after(str(retry_after)) if retry_after is not None
                else parse_retry_after(response.headers.get("retry-after")),
            )  # fmt: skip
        if status >= 500 or status in (401, 404):  # 401/404: bad token or URL; fix config
            return Attempt("retry", error_code=str(status), message=description)
        if status == 403:
            lowered = description.lower()
            code = "blocked" if "blocked" in lowered else (
                "deactivated" if "deactivated" in lowered else "forbidden")  # fmt: skip
            return Attempt("permanent", error_code=code, message=description, opt_out=True)
        code = description.removeprefix("Bad Request: ").strip().replace(" ", "_")[:40]
        return Attempt("permanent", error_code=code or str(status), message=description)


def _generic_classify(response: httpx.Response, id_field: str = "id") -> Attempt:
    """SMS gateway and ledger: `{id, ...}` on 2xx, `{"error": {"code", "message"}}` else."""
    data = json_or_none(response)
    data = data if isinstance(data, dict) else {}
    replayed = response.headers.get("idempotent-replayed") == "true"
    if 200 <= response.status_code < 300 and data.get(id_field):
        return Attempt("sent", provider_message_id=str(data[id_field]), replayed=replayed)
    error = data.get("error") if isinstance(data.get("error"), dict) else {}
    code = str(error.get("code") or response.status_code)
    message = str(error.get("message") or response.text[:200])
    status = response.status_code
    # 409: the same key is being processed right now (a concurrent or earlier attempt).
    if status in (401, 409, 429) or status >= 500:
        return Attempt(
            "retry", error_code=code, message=message,
            retry_after_s=parse_retry_after(response.headers.get("retry-after")),
        )  # fmt: skip
    return Attempt("permanent", error_code=code, message=message)


class SmsProvider(Provider):
    """Generic SMS HTTP API: `POST /v1/messages` {to, text, sender, client_ref=<key>}.

    Answer `{id, status}`; the gateway dedupes on `client_ref` (a repeat returns the
    original answer), so retries after an unknown outcome are safe.
    """

    name = "sms"
    native_idempotency = True

    def __init__(self, config: ProvidersConfig) -> None:
        super().__init__(config, config.sms_base_url, config.sms_rate_per_s)
        self.auth = {"Authorization": f"Bearer {config.sms_token.get_secret_value()}"}

    def build(self, item: OutboxItem) -> tuple[str, dict[str, str], dict[str, Any]]:
        p = item.payload
        body = {"to": p["recipient"], "text": p["text"], "sender": self.config.sms_sender,
                "client_ref": item.key}  # fmt: skip
        return "/v1/messages", self.auth, body

    def classify(self, response: httpx.Response) -> Attempt:
        return _generic_classify(response)


class LedgerProvider(Provider):
    """Loyalty ledger: `POST /v1/accruals` with `Idempotency-Key: <key>`.

    Body `{customer_id, phone, amount: "12.30", currency, source_event_id}`. A processed
    key returns the original status and body; the key reused with another body is a 422
    `idempotency_key_reused` (permanent). The body is a pure function of the planned
    accrual, so a retry of ours is always byte-for-byte the same request.
    `list_entries` reads back what the ledger holds (`GET /v1/accruals`, paginated).
    """

    name = "ledger"
    native_idempotency = True

    def __init__(self, config: ProvidersConfig) -> None:
        super().__init__(config, config.ledger_base_url, config.ledger_rate_per_s)
        self.auth = {"Authorization": f"Bearer {config.ledger_token.get_secret_value()}"}

    def build(self, item: OutboxItem) -> tuple[str, dict[str, str], dict[str, Any]]:
        p = item.payload
        amount = Decimal(str(p["amount"])).quantize(Decimal("0.01"))
        body = {
            "customer_id": p["customer_id"],
            "phone": p["phone_e164"],
            "amount": str(amount),
            "currency": p["currency"],
            "source_event_id": p["source_event_id"],
        }
        return "/v1/accruals", self.auth, body

    def classify(self, response: httpx.Response) -> Attempt:
        return _generic_classify(response)

    def list_entries(self, *, page_size: int = LEDGER_PAGE_SIZE) -> list[dict[str, Any]]:
        """Every entry the ledger holds, as it lists them: `GET /v1/accruals?limit=`,
        following the `Link: <…>; rel="next"` pages (cursor `starting_after=<entry id>`).

        Each entry: `{id, idempotency_key, source_event_id, amount, currency, …}`; this is
        reconciliation's ledger side (what the ledger recorded, not what we believe we
        sent). Synchronous: one pass of pages per reconciliation. Raises `httpx.HTTPError`
        when a page cannot be read, and RuntimeError when a page points back at itself.
        """
        timeout = httpx.Timeout(self.config.http_timeout_s,
                                connect=self.config.http_connect_timeout_s)  # fmt: skip
        url: str | None = self.base_url.rstrip("/") + f"/v1/accruals?limit={page_size}"
        seen: set[str] = set()
        entries: list[dict[str, Any]] = []
        with httpx.Client(headers=self.auth, timeout=timeout) as http:
            while url is not None:
                if url in seen:  # a server bug would otherwise loop forever
                    raise RuntimeError(f"the ledger's next page repeats {url}")
                seen.add(url)
                response = http.get(url)
                response.raise_for_status()
                page = response.json()
                if not isinstance(page, list):
                    raise RuntimeError(f"the ledger listed {type(page).__name__}, not a list")
                entries.extend(page)
                following = response.links.get("next")
                url = str(response.url.join(following["url"])) if following else None
        return entries
