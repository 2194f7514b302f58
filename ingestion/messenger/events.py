"""Webhook bodies → canonical messenger events (the rows of ``raw.messenger_events``).

One webhook can carry several events (a WhatsApp notification batches statuses and
messages); each event is validated on its own, so one bad status does not cost its
neighbours. Columns of an event:

=====================  ==========================================================================
provider               ``whatsapp`` | ``telegram`` | ``sms``
event_id               the provider's id of the event — WhatsApp status: ``<id>:<status>``;
                       WhatsApp inbound: ``messages[].id``; Telegram: ``update_id``; SMS: ``id``
event_type             ``status`` (delivery report) | ``inbound`` (the customer wrote or pressed a
                       button) | ``block`` (Telegram bot blocked / unblocked)
provider_message_id    status: the provider's id of our message; inbound: the provider id of the
                       message the customer replied to (WhatsApp ``context.id``, Telegram
                       ``reply_to_message.message_id`` / the message under a pressed button);
                       None when unknown
message_id             our message id: WhatsApp ``biz_opaque_callback_data``, SMS ``message_id``,
                       Telegram ``callback_query.data`` (the button payload we set); else None
status                 ``sent`` | ``delivered`` | ``read`` | ``failed`` (provider statuses, other
                       provider values pass through lower-cased) | ``replied`` (inbound) |
                       ``clicked`` (Telegram button) | ``opt_out`` | ``opt_in``
recipient              the customer: E.164 phone when the provider gives one (WhatsApp
                       ``recipient_id`` / ``from``, SMS ``phone``), the Telegram chat id otherwise
text                   inbound text (WhatsApp text/button/interactive title, Telegram text)
error_code             the provider's error code of a failed delivery, as a string
occurred_at            the provider's timestamp (UTC); Telegram button presses carry none, so
                       they use the receive time
received_at            when the receiver accepted the webhook (UTC)
payload                the event's own JSON object (a WhatsApp status or message, a Telegram
                       update, an SMS report), compact, keys as sent
=====================  ==========================================================================

Opt-outs: an inbound text that is a stop word (``STOP``, ``СТОП``, ``UNSUBSCRIBE``,
``ОТПИСАТЬСЯ``; case, surrounding blanks/punctuation and a leading ``/`` ignored) becomes
``event_type=inbound, status=opt_out``; a Telegram ``my_chat_member`` whose new status is
``kicked`` (the user blocked the bot) becomes ``event_type=block, status=opt_out``, and one
back to ``member`` becomes ``event_type=block, status=opt_in``.

Provider retries are not removed here: the same event twice gives the same
(provider, event_id), which the table's ReplacingMergeTree key collapses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import phonenumbers

from ingestion.messenger.spool import SpoolRecord

EVENT_COLUMNS = (
    "provider",
    "event_id",
    "event_type",
    "provider_message_id",
    "message_id",
    "status",
    "recipient",
    "text",
    "error_code",
    "occurred_at",
    "received_at",
    "payload",
)

STOP_WORDS = frozenset({"stop", "стоп", "unsubscribe", "отписаться", "stopall"})
SMS_STATUS_ALIASES = {
    "delivrd": "delivered",
    "undeliv": "failed",
    "undelivered": "failed",
    "rejected": "failed",
    "expired": "failed",
    "rejectd": "failed",
    "accepted": "sent",
    "enroute": "sent",
}
_MIN_TS = datetime(2000, 1, 1, tzinfo=UTC)
_MAX_TS = datetime(2100, 1, 1, tzinfo=UTC)
_STRIP = re.compile(r"^[\s/!.,;:\-\"'«»]+|[\s!.,;:\-\"'«»]+$")


class EventError(ValueError):
    """A webhook event that cannot become a canonical row; `field` names the culprit."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Rejected:
    """One quarantined piece: where (row_ref), which field, why, and the raw JSON/text."""

    row_ref: str
    field: str
    reason: str
    raw: str


def is_stop_text(text: str | None) -> bool:
    """True for an opt-out keyword (see module docs)."""
    if not text:
        return False
    return _STRIP.sub("", text).casefold() in STOP_WORDS


def _compact(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _require_str(obj: dict[str, Any], key: str, field: str | None = None) -> str:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise EventError(field or key, f"missing or not a string/number (got {value!r})")
    return str(value)


def _optional_str(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, dict | list | bool):
        return None
    return str(value)


def parse_timestamp(value: Any, field: str) -> datetime:
    """Unix seconds (number or numeric string) or ISO-8601 (naive = UTC) → aware UTC."""
    if isinstance(value, bool) or value is None or value == "":
        raise EventError(field, f"missing timestamp (got {value!r})")
    moment: datetime
    if isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
        try:
            moment = datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise EventError(field, f"bad Unix timestamp {value!r}: {exc}") from None
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise EventError(field, f"not a Unix or ISO-8601 timestamp: {value!r}") from None
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    else:
        raise EventError(field, f"not a timestamp: {value!r}")
    if not _MIN_TS <= moment < _MAX_TS:
        raise EventError(field, f"timestamp {value!r} is out of range (seconds expected)")
    return moment


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def normalize_phone(value: Any, field: str) -> str:
    """A provider phone (WhatsApp wa_id digits, '+…', or spaced) → E.164."""
    raw = _optional_str(value)
    if raw is None:
        raise EventError(field, "missing phone number")
    return _e164(raw, field)


@lru_cache(maxsize=131_072)
def _e164(raw: str, field: str) -> str:
    # Cached: a message's sent/delivered/read reports repeat its phone, and parsing with
    # phonenumbers is the loader's most expensive step.
    digits = re.sub(r"[^\d+]", "", raw)
    candidate = digits if digits.startswith("+") else "+" + digits
    try:
        number = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException as exc:
        raise EventError(field, f"not a phone number: {raw!r} ({exc})") from None
    if not phonenumbers.is_possible_number(number):
        raise EventError(field, f"not a possible phone number: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _event(provider: str, received_at: datetime, **values: Any) -> dict[str, Any]:
    row = dict.fromkeys(EVENT_COLUMNS)
    row.update(values, provider=provider, received_at=received_at)
    return row


# --- WhatsApp Cloud API ---------------------------------------------------------------------


def _whatsapp_status(status: dict[str, Any], received_at: datetime) -> dict[str, Any]:
    provider_id = _require_str(status, "id")
    state = _require_str(status, "status").lower()
    errors = status.get("errors")
    error_code = None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        error_code = _optional_str(errors[0].get("code"))
    return _event(
        "whatsapp",
        received_at,
        event_id=f"{provider_id}:{state}",
        event_type="status",
        provider_message_id=provider_id,
        message_id=_optional_str(status.get("biz_opaque_callback_data")),
        status=state,
        recipient=normalize_phone(status.get("recipient_id"), "recipient_id"),
        error_code=error_code,
        occurred_at=parse_timestamp(status.get("timestamp"), "timestamp"),
        payload=_compact(status),
    )


def _whatsapp_text(message: dict[str, Any]) -> str | None:
    kind = message.get("type")
    part = message.get(kind) if isinstance(kind, str) else None
    if not isinstance(part, dict):
        return None
    if kind == "text":
        return _optional_str(part.get("body"))
    if kind == "button":
        return _optional_str(part.get("text"))
    if kind == "interactive":
        for reply in ("button_reply", "list_reply"):
            if isinstance(part.get(reply), dict):
                return _optional_str(part[reply].get("title"))
    return None


def _whatsapp_inbound(message: dict[str, Any], received_at: datetime) -> dict[str, Any]:
    text = _whatsapp_text(message)
    context = message.get("context")
    replied_to = _optional_str(context.get("id")) if isinstance(context, dict) else None
    return _event(
        "whatsapp",
        received_at,
        event_id=_require_str(message, "id"),
        event_type="inbound",
        provider_message_id=replied_to,
        status="opt_out" if is_stop_text(text) else "replied",
        recipient=normalize_phone(message.get("from"), "from"),
        text=text,
        occurred_at=parse_timestamp(message.get("timestamp"), "timestamp"),
        payload=_compact(message),
    )


def _whatsapp(
    body: dict[str, Any], received_at: datetime, ref: str
) -> tuple[list[dict[str, Any]], list[Rejected]]:
    events: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    entries = body.get("entry")
    if not isinstance(entries, list):
        raise EventError("entry", "WhatsApp notification without an entry[] list")
    for e, entry in enumerate(entries):
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            rejected.append(
                Rejected(f"{ref}/entry{e}", "changes", "missing changes[]", _compact(entry))
            )
            continue
        for c, change in enumerate(changes):
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                rejected.append(
                    Rejected(
                        f"{ref}/entry{e}.change{c}", "value", "missing value", _compact(change)
                    )
                )
                continue
            for kind, build in (("statuses", _whatsapp_status), ("messages", _whatsapp_inbound)):
                items = value.get(kind) or []
                for i, item in enumerate(items if isinstance(items, list) else [items]):
                    item_ref = f"{ref}/entry{e}.change{c}.{kind}{i}"
                    try:
                        if not isinstance(item, dict):
                            raise EventError(kind, "not a JSON object")
                        events.append(build(item, received_at))
                    except EventError as exc:
                        rejected.append(Rejected(item_ref, exc.field, exc.reason, _compact(item)))
    return events, rejected


# --- Telegram Bot API -----------------------------------------------------------------------


def _chat_id(obj: Any, field: str) -> str:
    chat = obj.get("chat") if isinstance(obj, dict) else None
    if not isinstance(chat, dict):
        raise EventError(field, "missing chat")
    return _require_str(chat, "id", f"{field}.id")


def _telegram(
    body: dict[str, Any], received_at: datetime, ref: str
) -> tuple[list[dict[str, Any]], list[Rejected]]:
    update_id = _require_str(body, "update_id")
    common = {"event_id": update_id, "payload": _compact(body)}
    if isinstance(body.get("message"), dict):
        message = body["message"]
        text = _optional_str(message.get("text"))
        reply = message.get("reply_to_message")
        replied_to = _optional_str(reply.get("message_id")) if isinstance(reply, dict) else None
        event = _event(
            "telegram",
            received_at,
            event_type="inbound",
            provider_message_id=replied_to,
            status="opt_out" if is_stop_text(text) else "replied",
            recipient=_chat_id(message, "message.chat"),
            text=text,
            occurred_at=parse_timestamp(message.get("date"), "message.date"),
            **common,
        )
    elif isinstance(body.get("my_chat_member"), dict):
        member = body["my_chat_member"]
        new = member.get("new_chat_member")
        new_status = _optional_str(new.get("status")) if isinstance(new, dict) else None
        if new_status is None:
            raise EventError("my_chat_member.new_chat_member.status", "missing")
        status = {"kicked": "opt_out", "member": "opt_in"}.get(new_status, new_status)
        event = _event(
            "telegram",
            received_at,
            event_type="block",
            status=status,
            recipient=_chat_id(member, "my_chat_member.chat"),
            occurred_at=parse_timestamp(member.get("date"), "my_chat_member.date"),
            **common,
        )
    elif isinstance(body.get("callback_query"), dict):
        query = body["callback_query"]
        message = query.get("message")
        event = _event(
            "telegram",
            received_at,
            event_type="inbound",
            provider_message_id=_optional_str(message.get("message_id"))
            if isinstance(message, dict)
            else None,
            message_id=_optional_str(query.get("data")),
            status="clicked",
            recipient=_chat_id(message, "callback_query.message.chat"),
            occurred_at=received_at,
            **common,
        )
    else:
        kinds = sorted(k for k in body if k != "update_id")
        raise EventError("update", f"unsupported Telegram update kind: {kinds}")
    return [event], []


# --- generic SMS delivery report ------------------------------------------------------------


def _sms(
    body: dict[str, Any], received_at: datetime, ref: str
) -> tuple[list[dict[str, Any]], list[Rejected]]:
    state = _require_str(body, "status").strip().lower()
    return [
        _event(
            "sms",
            received_at,
            event_id=_require_str(body, "id"),
            event_type="status",
            provider_message_id=_optional_str(body.get("provider_message_id")),
            message_id=_optional_str(body.get("message_id")),
            status=SMS_STATUS_ALIASES.get(state, state),
            recipient=normalize_phone(body.get("phone"), "phone"),
            error_code=_optional_str(body.get("error_code")),
            occurred_at=parse_timestamp(body.get("timestamp"), "timestamp"),
            payload=_compact(body),
        )
    ], []


_PARSERS = {"whatsapp": _whatsapp, "telegram": _telegram, "sms": _sms}


def record_events(record: SpoolRecord, ref: str) -> tuple[list[dict[str, Any]], list[Rejected]]:
    """The canonical events of one spooled webhook, and the parts that had to be rejected."""
    raw_text = record.body.decode("utf-8", errors="replace")
    try:
        body = json.loads(record.body)
    except ValueError as exc:
        return [], [Rejected(ref, "body", f"not JSON: {exc}", raw_text)]
    if not isinstance(body, dict):
        return [], [Rejected(ref, "body", "not a JSON object", raw_text)]
    received_at = datetime.fromtimestamp(record.received_at_ms / 1000, tz=UTC)
    try:
        return _PARSERS[record.provider](body, received_at, ref)
    except EventError as exc:
        return [], [Rejected(ref, exc.field, exc.reason, raw_text)]
