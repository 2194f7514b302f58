"""Messenger webhooks: `webhooks/<provider>.jsonl`, the signed requests WhatsApp,
Telegram and the SMS gateway would have posted to the receiver.

Requests (one JSON line each, in arrival order) are made for sends planned in the last
`webhook_days` days before as_of, plus the opt-outs of that period; ~2% are provider
duplicates (the same request again, later) and ~3% arrive late (after events that
happened after them).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simulation.ecosystem.common import Manifest, local_to_utc
from simulation.ecosystem.history import History
from simulation.ecosystem.messaging import OrderedSends, telegram_chat_id
from simulation.ecosystem.model import HISTORY_DAYS

if TYPE_CHECKING:
    from simulation.ecosystem.crm import CrmView

_encode_str = json.encoder.encode_basestring  # type: ignore[attr-defined]
WA_PATH, TG_PATH, SMS_PATH = "/webhooks/whatsapp", "/webhooks/telegram", "/webhooks/sms"
DUPLICATE_SHARE = 0.02
LATE_SHARE = 0.03
REPLIES = ("Спасибо!", "Записаться можно на субботу?", "ok", "Danke!", "Рахмет!", "👍")

# The webhook receiver's development secrets: the defaults of revisit/settings.py, repeated
# here because the simulation does not import the platform (a test checks they match).
# The demo passes the receiver's configured secrets instead.
DEV_WHATSAPP_APP_SECRET = "dev-whatsapp-app-secret"
DEV_TELEGRAM_SECRET_TOKEN = "dev-telegram-secret-token"
DEV_SMS_WEBHOOK_SECRET = "dev-sms-webhook-secret"

Events = dict[str, list[tuple[int, str]]]  # provider → (event time, request body)


@dataclass(frozen=True)
class WebhookSecrets:
    """Secrets the webhook requests are signed with (defaults: the receiver's
    development secrets)."""

    whatsapp_app_secret: str = DEV_WHATSAPP_APP_SECRET
    telegram_secret_token: str = DEV_TELEGRAM_SECRET_TOKEN
    sms_webhook_secret: str = DEV_SMS_WEBHOOK_SECRET


class _Counters:
    """Numbers shared by the send events and the opt-outs, taken in the order the events
    are made: inbound WhatsApp messages and Telegram updates."""

    def __init__(self) -> None:
        self.wa_inbound = 0
        self.tg_update = 10_000

    def next_wa_inbound(self) -> int:
        self.wa_inbound += 1
        return self.wa_inbound

    def next_tg_update(self) -> int:
        self.tg_update += 1
        return self.tg_update


def write_webhooks(
    out_dir: Path,
    man: Manifest,
    sends: OrderedSends,
    h: History,
    view: CrmView,
    rng: np.random.Generator,
    secrets: WebhookSecrets,
    webhook_days: int,
) -> dict[str, Any]:
    """One requests file per provider; returns the `webhooks` part of the manifest."""
    first_day = HISTORY_DAYS - webhook_days
    hook = np.flatnonzero((sends.day >= first_day) & ~sends.holdout)
    names = view.names.to_numpy(zero_copy_only=False)
    wa_phone = np.char.lstrip(h.phone_e164.astype(str), "+")
    counters = _Counters()
    u = rng.random((len(hook), 6))
    events = _send_events(sends, hook, u, h, names, wa_phone, counters)
    opt_outs = _opt_out_events(events, h, view, names, wa_phone, first_day, counters)
    info: dict[str, Any] = {"webhook_days": webhook_days, "opt_outs": opt_outs}
    for provider, evs in events.items():
        path = out_dir / "webhooks" / f"{provider}.jsonl"
        info[provider] = _write_requests(path, provider, evs, rng, secrets)
        man.add(path, info[provider]["requests"])
    return info


# ------------------------------------------------------------------------------ events


def _send_events(
    sends: OrderedSends,
    hook: np.ndarray,
    u: np.ndarray,
    h: History,
    names: np.ndarray,
    wa_phone: np.ndarray,
    counters: _Counters,
) -> Events:
    """The provider events of the sends `hook` (row j of `u`: the uniform draws of send
    hook[j]): WhatsApp statuses and a few replies, Telegram replies (the Bot API reports
    no statuses), SMS delivery reports."""
    events: Events = {"whatsapp": [], "telegram": [], "sms": []}
    reach = h.lat.reachable[sends.rel]
    for j, i in enumerate(hook.tolist()):
        t0 = int(sends.planned[i]) + 1 + int(u[j, 0] * 5)
        ch = int(sends.channel[i])
        p = int(sends.person[i])
        pid = sends.provider_ids[i].tobytes().decode().strip().strip('"')
        if ch == 0:
            name = str(names[sends.rel[i]])
            events["whatsapp"] += _whatsapp_events(
                u[j], t0, pid, f"M{i + 1:010d}", str(wa_phone[p]), name, reach[i], counters
            )
        elif ch == 1:
            if reach[i] and u[j, 4] < 0.04:
                t3 = t0 + 60 + int(u[j, 5] * 7200)
                chat_id, msg_no = (int(x) for x in pid.split(":"))
                name, reply = str(names[sends.rel[i]]), REPLIES[j % len(REPLIES)]
                update = counters.next_tg_update()
                events["telegram"].append(
                    (t3, _tg_message(update, chat_id, name, reply, t3, msg_no))
                )
        else:
            ph = str(h.phone_e164[p])
            events["sms"].append((t0, _sms_report(2 * i, pid, "sent", ph, t0)))
            t1 = t0 + 2 + int(u[j, 1] * 120)
            st = "delivered" if reach[i] else "failed"
            events["sms"].append((t1, _sms_report(2 * i + 1, pid, st, ph, t1)))
    return events


def _whatsapp_events(
    u: np.ndarray,
    t0: int,
    pid: str,
    mid: str,
    phone: str,
    name: str,
    reached: bool,
    counters: _Counters,
) -> list[tuple[int, str]]:
    """Statuses of one WhatsApp message (sent, then failed; or delivered, 70% read) and
    a reply to 4% of the read ones; `u` are the send's uniform draws."""
    events = [(t0, _wa_status(pid, "sent", t0, phone, mid))]
    if not reached:
        t1 = t0 + 1 + int(u[1] * 30)
        events.append((t1, _wa_status(pid, "failed", t1, phone, mid, err=True)))
        return events
    t1 = t0 + 1 + int(u[1] * 60)
    events.append((t1, _wa_status(pid, "delivered", t1, phone, mid)))
    if u[2] < 0.7:
        t2 = t1 + 60 + int(u[3] * 86_000)
        events.append((t2, _wa_status(pid, "read", t2, phone, mid)))
        if u[4] < 0.04:
            seq = counters.next_wa_inbound()
            t3 = t2 + 30 + int(u[5] * 3600)
            reply = REPLIES[seq % len(REPLIES)]
            events.append((t3, _wa_inbound(phone, name, reply, t3, pid, seq)))
    return events


def _opt_out_events(
    events: Events,
    h: History,
    view: CrmView,
    names: np.ndarray,
    wa_phone: np.ndarray,
    first_day: int,
    counters: _Counters,
) -> dict[str, int]:
    """Adds the opt-outs inside the webhook period to `events` (WhatsApp "STOP";
    Telegram "STOP" or a block, alternately) and counts them."""
    lat = h.lat
    oo = np.flatnonzero(
        (lat.opt_out_day >= first_day) & (lat.opt_out_day < HISTORY_DAYS) & lat.consent
    )
    oo_t = local_to_utc(
        h.day0_epoch + lat.opt_out_day[oo], np.full(len(oo), 12 * 60), view.rel_tz[oo], view.zones
    )
    opt_outs = {"whatsapp_stop": 0, "telegram_stop": 0, "telegram_block": 0}
    for k, (ri, t) in enumerate(zip(oo.tolist(), oo_t.tolist(), strict=True)):
        p = int(lat.person[ri])
        nm = str(names[ri])
        if lat.channel[ri] == 0:
            seq = counters.next_wa_inbound()
            events["whatsapp"].append((t, _wa_inbound(str(wa_phone[p]), nm, "STOP", t, None, seq)))
            opt_outs["whatsapp_stop"] += 1
            continue
        chat_id = int(telegram_chat_id(np.array([p]))[0])
        update = counters.next_tg_update()
        if k % 2 == 0:
            events["telegram"].append((t, _tg_message(update, chat_id, nm, "STOP", t, None)))
            opt_outs["telegram_stop"] += 1
        else:
            events["telegram"].append((t, _tg_block(update, chat_id, nm, t)))
            opt_outs["telegram_block"] += 1
    return opt_outs


# ------------------------------------------------------------------------------ bodies


def _wa_status(sid: str, status: str, t: int, phone: str, mid: str, err: bool = False) -> str:
    """A WhatsApp Cloud API status callback (built as text: the most frequent body)."""
    errors = ',"errors":[{"code":131026,"title":"Message undeliverable"}]' if err else ""
    return (
        '{"object":"whatsapp_business_account","entry":[{"id":"WABA1","changes":[{"value":'
        '{"messaging_product":"whatsapp","metadata":{"display_phone_number":"74950000000",'
        '"phone_number_id":"PNID1"},"statuses":[{"id":"'
        + sid
        + '","status":"'
        + status
        + '","timestamp":"'
        + str(t)
        + '","recipient_id":"'
        + phone
        + '","biz_opaque_callback_data":"'
        + mid
        + '"'
        + errors
        + "}]},"
        '"field":"messages"}]}]}'
    )


def _wa_inbound(phone: str, name: str, text: str, t: int, ctx: str | None, seq: int) -> str:
    """An inbound WhatsApp text message, replying to message `ctx` if given."""
    context = f',"context":{{"from":"74950000000","id":"{ctx}"}}' if ctx else ""
    message = {
        "from": phone,
        "id": f"wamid.IN{seq:012d}",
        "timestamp": str(t),
        "type": "text",
        "text": {"body": text},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "74950000000", "phone_number_id": "PNID1"},
        "contacts": [{"profile": {"name": name}, "wa_id": phone}],
        "messages": [message],
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA1", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).replace(
        '"type":"text"', '"type":"text"' + context
    )


def _tg_message(
    update_id: int, chat_id: int, name: str, text: str, t: int, reply_to: int | None
) -> str:
    """A Telegram update with a private message, replying to bot message `reply_to`."""
    msg: dict[str, Any] = {
        "message_id": 100_000 + update_id,
        "from": {"id": chat_id, "is_bot": False, "first_name": name.split()[0]},
        "chat": {"id": chat_id, "type": "private", "first_name": name.split()[0]},
        "date": t,
        "text": text,
    }
    if reply_to is not None:
        msg["reply_to_message"] = {
            "message_id": reply_to,
            "date": t - 60,
            "chat": {"id": chat_id, "type": "private"},
        }
    return json.dumps(
        {"update_id": update_id, "message": msg}, ensure_ascii=False, separators=(",", ":")
    )


def _tg_block(update_id: int, chat_id: int, name: str, t: int) -> str:
    """A Telegram `my_chat_member` update: the user blocked the bot."""
    bot = {"id": 7_000_000_001, "is_bot": True, "first_name": "RevisitBot"}
    member = {
        "chat": {"id": chat_id, "type": "private", "first_name": name.split()[0]},
        "from": {"id": chat_id, "is_bot": False, "first_name": name.split()[0]},
        "date": t,
        "old_chat_member": {"user": bot, "status": "member"},
        "new_chat_member": {"user": bot, "status": "kicked", "until_date": 0},
    }
    return json.dumps(
        {"update_id": update_id, "my_chat_member": member},
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _sms_report(eid: int, pid: str, status: str, phone: str, t: int) -> str:
    """An SMS gateway delivery report."""
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    return (
        '{"id":"dr-'
        + f"{eid:010d}"
        + '","message_id":"'
        + pid
        + '","status":"'
        + status
        + '","phone":"'
        + phone
        + '","timestamp":"'
        + iso
        + '"}'
    )


# ---------------------------------------------------------------------------- requests


def _write_requests(
    path: Path,
    provider: str,
    events: list[tuple[int, str]],
    rng: np.random.Generator,
    secrets: WebhookSecrets,
) -> dict[str, int]:
    """Requests in arrival order with duplicates and late arrivals."""
    times = np.array([e[0] for e in events], dtype=np.int64)
    by_time = np.argsort(times, kind="stable")
    times = times[by_time]
    n = len(times)
    delay = rng.uniform(0, 2, size=n)
    late = rng.random(n) < LATE_SHARE
    delay[late] = rng.uniform(60, 3600, size=int(late.sum()))
    dup = rng.random(n) < DUPLICATE_SHARE
    dup_delay = rng.uniform(1, 300, size=n)
    arrival = np.concatenate([times + delay, (times + delay + dup_delay)[dup]])
    event = np.concatenate([np.arange(n), np.flatnonzero(dup)])
    event = event[np.lexsort((event, arrival))]
    lines = _request_lines(provider, [events[i][1] for i in by_time.tolist()], secrets)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        fh.writelines(lines[i] for i in event.tolist())
    ev_time = times[event]
    return {
        "requests": len(event),
        "events": n,
        "duplicates": int(dup.sum()),
        "out_of_order": int((ev_time[1:] < ev_time[:-1]).sum()),
    }


def _request_lines(provider: str, bodies: list[str], secrets: WebhookSecrets) -> list[str]:
    """One request line per body (a duplicate repeats it); headers as json.dumps would
    write them, with the signature from a keyed HMAC copied per body."""
    route = {"whatsapp": WA_PATH, "telegram": TG_PATH, "sms": SMS_PATH}[provider]
    head = '{"method":"POST","path":"' + route + '","headers":{"Content-Type":"application/json",'
    if provider == "telegram":
        token = json.dumps(secrets.telegram_secret_token)
        head += '"X-Telegram-Bot-Api-Secret-Token":' + token + '},"body":'
        return [head + _encode_str(body) + "}\n" for body in bodies]
    key = secrets.whatsapp_app_secret if provider == "whatsapp" else secrets.sms_webhook_secret
    sign = hmac.new(key.encode(), digestmod=hashlib.sha256)
    header = "X-Hub-Signature-256" if provider == "whatsapp" else "X-Signature"
    head += '"' + header + '":"sha256='
    lines = []
    for body in bodies:
        mac = sign.copy()
        mac.update(body.encode())
        lines.append(head + mac.hexdigest() + '"},"body":' + _encode_str(body) + "}\n")
    return lines
