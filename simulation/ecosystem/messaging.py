"""Historical trigger sends (`messages/sends.jsonl`) and the messenger webhooks they caused.

Provider message ids: WhatsApp `wamid.…`; Telegram `<chat_id>:<message_id>` (a Bot API
message id is only unique inside its chat, and the chat id is what replies and blocks
carry); SMS `sms-…`. Webhook requests (one JSON line each, in arrival order) are made for
sends planned in the last `webhook_days` days before as_of, plus the opt-outs of that
period; ~2% are provider duplicates (the same request again, later) and ~3% arrive late
(after events that happened after them).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulation.ecosystem import _lines
from simulation.ecosystem.common import (
    local_to_utc,
)
from simulation.ecosystem.model import CHANNELS, HISTORY_DAYS, TRIGGERS

_encode_str = json.encoder.encode_basestring  # type: ignore[attr-defined]
WA_PATH, TG_PATH, SMS_PATH = "/webhooks/whatsapp", "/webhooks/telegram", "/webhooks/sms"
DUPLICATE_SHARE = 0.02
LATE_SHARE = 0.03
REPLIES = ("Спасибо!", "Записаться можно на субботу?", "ok", "Danke!", "Рахмет!", "👍")


_CHUNK = 250_000  # sends rendered at a time
_SEND_FIELDS = (
    "message_id",
    "business_id",
    "customer_phone",
    "trigger",
    "campaign_id",
    "channel",
    "holdout",
    "planned_at",
    "offer_id",
    "provider_message_id",
)


def _provider_ids(
    channel: np.ndarray, holdout: np.ndarray, chat: np.ndarray, per_chat: np.ndarray
) -> np.ndarray:
    """Provider message id tokens (null for holdout): WhatsApp `wamid.HBgL<12 digits>`,
    Telegram `<chat id>:<message no. in the chat>`, SMS `sms-<10 digits>`, numbered by
    send (row) order."""
    n = len(channel)
    num = np.arange(1, n + 1)
    chat_w = len(str(int(chat.max()))) if n else 1
    seq_w = len(str(int(per_chat.max()))) if n else 1
    width = max(24, chat_w + seq_w + 3)
    out = np.full((n, width), _lines.SPACE, dtype=np.uint8)
    for code, prefix, w in ((0, b'"wamid.HBgL', 12), (2, b'"sms-', 10)):
        sel = np.flatnonzero(channel == code)
        out[sel, : len(prefix)] = np.frombuffer(prefix, np.uint8)
        out[sel, len(prefix) : len(prefix) + w] = _lines.digits(num[sel], w)
        out[sel, len(prefix) + w] = _lines.QUOTE
    sel = np.flatnonzero(channel == 1)
    text = np.concatenate(
        [_lines.int_text(chat[sel], chat_w), _lines.int_text(per_chat[sel], seq_w)], axis=1
    )
    # "<chat>:<seq>" without the padding between the two numbers
    chat_len = (text[:, :chat_w] != _lines.SPACE).sum(axis=1)
    seq_len = (text[:, chat_w:] != _lines.SPACE).sum(axis=1)
    col = np.arange(width)[None, :]
    src = np.where(col - 1 < chat_len[:, None], col - 1, col - 2 - chat_len[:, None] + chat_w)
    tg = np.take_along_axis(text, np.clip(src, 0, text.shape[1] - 1), axis=1)
    tg[:, 0] = _lines.QUOTE
    tg[np.arange(len(sel)), chat_len + 1] = ord(":")
    end = chat_len + seq_len + 2
    tg[np.arange(len(sel)), end] = _lines.QUOTE
    tg[col > end[:, None]] = _lines.SPACE
    out[sel] = tg
    out[holdout] = _lines.SPACE
    out[holdout, :4] = np.frombuffer(b"null", np.uint8)
    return out


def telegram_chat_id(person: np.ndarray) -> np.ndarray:
    return 5_000_000_000 + np.asarray(person, dtype=np.int64) * 7 + 3


def write_messages(
    out_dir: Path,
    man: Any,
    sends: Any,
    lat: Any,
    biz: pd.DataFrame,
    offers: pd.DataFrame,
    e164_np: np.ndarray,
    rel_tz: np.ndarray,
    zones: list[str],
    day0_epoch: int,
    ts: _lines.Timestamps,
    rng: np.random.Generator,
    secrets: Any,
    webhook_days: int,
    names: np.ndarray,
) -> dict[str, Any]:
    n = len(sends.rel)
    minute = rng.integers(10 * 60, 20 * 60, size=n)
    planned = local_to_utc(day0_epoch + sends.day, minute, rel_tz[sends.rel], zones)
    order = np.lexsort((sends.rel, planned))
    rel = sends.rel[order]
    planned = planned[order]
    trig = sends.trigger[order]
    holdout = sends.holdout[order]
    offer = sends.offer[order]
    day = sends.day[order]
    channel = lat.channel[rel]
    person = lat.person[rel]
    chat = telegram_chat_id(person)
    per_chat = pd.Series(chat).groupby(chat).cumcount().to_numpy() + 1
    prov = _provider_ids(channel, holdout, chat, per_chat)
    # campaign ids: trigger-business-month of the period, rendered once per combination
    b = lat.business[rel]
    period = day // 30
    n_bus, n_periods = len(biz), int(period.max()) + 1 if n else 1
    labels = (
        (day0_epoch + 30 * np.arange(n_periods))
        .astype("datetime64[D]")
        .astype("datetime64[M]")
        .astype(str)
    )
    combos, campaign = np.unique((trig * n_bus + b) * n_periods + period, return_inverse=True)
    biz_ids = biz["id"].to_numpy()
    campaign_names = [
        f"{TRIGGERS[k // n_periods // n_bus]}-{biz_ids[k // n_periods % n_bus]}-"
        f"{labels[k % n_periods]}"
        for k in combos.tolist()
    ]
    tables = {
        "business_id": _lines.id_tokens("B", np.arange(1, n_bus + 1), 5),
        "customer_phone": _lines.string_tokens(e164_np),
        "trigger": _lines.token_table([f'"{t}"' for t in TRIGGERS]),
        "campaign_id": _lines.string_tokens(np.array(campaign_names, dtype=object)),
        "channel": _lines.token_table([f'"{c}"' for c in CHANNELS]),
        "holdout": _lines.token_table(["false", "true"]),
        # offers 0..n-1, then null
        "offer_id": _lines.token_table(
            [f'"O{i + 1:04d}"' for i in range(len(offers))] + ["null"], align="right"
        ),
    }
    widths = {"message_id": 13, "planned_at": 22, "provider_message_id": prov.shape[1]}
    widths.update({k: t.shape[1] for k, t in tables.items()})
    layout = _lines.Layout([(f, widths[f]) for f in _SEND_FIELDS])
    path = out_dir / "messages" / "sends.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        for lo in range(0, n, _CHUNK):
            sl = slice(lo, min(n, lo + _CHUNK))
            out = layout.new(sl.stop - sl.start)
            layout.put(
                out, "message_id", _lines.id_tokens("M", np.arange(sl.start, sl.stop) + 1, 10)
            )
            layout.take(out, "business_id", tables, b[sl])
            layout.take(out, "customer_phone", tables, person[sl])
            layout.take(out, "trigger", tables, trig[sl])
            layout.take(out, "campaign_id", tables, campaign[sl])
            layout.take(out, "channel", tables, channel[sl])
            layout.take(out, "holdout", tables, holdout[sl].astype(np.int64))
            layout.put(out, "planned_at", ts.render(planned[sl], quoted=True))
            layout.take(out, "offer_id", tables, np.where(offer[sl] < 0, len(offers), offer[sl]))
            layout.put(out, "provider_message_id", prov[sl])
            _lines.write_matrix(fh, out)
    man.add(path, n)

    # --- webhooks ---------------------------------------------------------------------
    first_day = HISTORY_DAYS - webhook_days
    hook = np.flatnonzero((day >= first_day) & ~holdout)
    events: dict[str, list[tuple[int, str]]] = {"whatsapp": [], "telegram": [], "sms": []}
    reach = lat.reachable[rel]
    wa_phone = np.char.lstrip(e164_np.astype(str), "+")
    u = rng.random((len(hook), 6))
    tg_update = [10_000]

    def wa_status(sid: str, status: str, t: int, phone: str, mid: str, err: bool = False) -> str:
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

    def wa_inbound(phone: str, name: str, text: str, t: int, ctx: str | None, seq: int) -> str:
        context = f',"context":{{"from":"74950000000","id":"{ctx}"}}' if ctx else ""
        return json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": "WABA1",
                        "changes": [
                            {
                                "field": "messages",
                                "value": {
                                    "messaging_product": "whatsapp",
                                    "metadata": {
                                        "display_phone_number": "74950000000",
                                        "phone_number_id": "PNID1",
                                    },
                                    "contacts": [{"profile": {"name": name}, "wa_id": phone}],
                                    "messages": [
                                        {
                                            "from": phone,
                                            "id": f"wamid.IN{seq:012d}",
                                            "timestamp": str(t),
                                            "type": "text",
                                            "text": {"body": text},
                                        }
                                    ],
                                },
                            }
                        ],
                    }
                ],
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).replace('"type":"text"', '"type":"text"' + context)

    def tg_message(chat_id: int, name: str, text: str, t: int, reply_to: int | None) -> str:
        tg_update[0] += 1
        msg: dict[str, Any] = {
            "message_id": 100_000 + tg_update[0],
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
            {"update_id": tg_update[0], "message": msg}, ensure_ascii=False, separators=(",", ":")
        )

    def tg_block(chat_id: int, name: str, t: int) -> str:
        tg_update[0] += 1
        bot = {"id": 7_000_000_001, "is_bot": True, "first_name": "RevisitBot"}
        return json.dumps(
            {
                "update_id": tg_update[0],
                "my_chat_member": {
                    "chat": {"id": chat_id, "type": "private", "first_name": name.split()[0]},
                    "from": {"id": chat_id, "is_bot": False, "first_name": name.split()[0]},
                    "date": t,
                    "old_chat_member": {"user": bot, "status": "member"},
                    "new_chat_member": {"user": bot, "status": "kicked", "until_date": 0},
                },
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    def sms_report(eid: int, pid: str, status: str, phone: str, t: int) -> str:
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

    seq = 0
    for j, i in enumerate(hook.tolist()):
        t0 = int(planned[i]) + 1 + int(u[j, 0] * 5)
        ch = int(channel[i])
        p = int(person[i])
        mid = f"M{i + 1:010d}"
        pid = prov[i].tobytes().decode().strip().strip('"')
        if ch == 0:
            ph = str(wa_phone[p])
            events["whatsapp"].append((t0, wa_status(pid, "sent", t0, ph, mid)))
            if reach[i]:
                t1 = t0 + 1 + int(u[j, 1] * 60)
                events["whatsapp"].append((t1, wa_status(pid, "delivered", t1, ph, mid)))
                if u[j, 2] < 0.7:
                    t2 = t1 + 60 + int(u[j, 3] * 86_000)
                    events["whatsapp"].append((t2, wa_status(pid, "read", t2, ph, mid)))
                    if u[j, 4] < 0.04:
                        seq += 1
                        t3 = t2 + 30 + int(u[j, 5] * 3600)
                        events["whatsapp"].append(
                            (
                                t3,
                                wa_inbound(
                                    ph,
                                    str(names[rel[i]]),
                                    REPLIES[seq % len(REPLIES)],
                                    t3,
                                    pid,
                                    seq,
                                ),
                            )
                        )
            else:
                t1 = t0 + 1 + int(u[j, 1] * 30)
                events["whatsapp"].append((t1, wa_status(pid, "failed", t1, ph, mid, err=True)))
        elif ch == 1:
            if reach[i] and u[j, 4] < 0.04:
                t3 = t0 + 60 + int(u[j, 5] * 7200)
                chat_id, msg_no = (int(x) for x in pid.split(":"))
                events["telegram"].append(
                    (
                        t3,
                        tg_message(
                            chat_id, str(names[rel[i]]), REPLIES[j % len(REPLIES)], t3, msg_no
                        ),
                    )
                )
        else:
            ph = str(e164_np[p])
            events["sms"].append((t0, sms_report(2 * i, pid, "sent", ph, t0)))
            t1 = t0 + 2 + int(u[j, 1] * 120)
            st = "delivered" if reach[i] else "failed"
            events["sms"].append((t1, sms_report(2 * i + 1, pid, st, ph, t1)))
    # opt-outs inside the webhook period: WhatsApp "STOP", Telegram "STOP" or a block
    oo = np.flatnonzero(
        (lat.opt_out_day >= first_day) & (lat.opt_out_day < HISTORY_DAYS) & lat.consent
    )
    oo_t = local_to_utc(
        day0_epoch + lat.opt_out_day[oo], np.full(len(oo), 12 * 60), rel_tz[oo], zones
    )
    opt_outs = {"whatsapp_stop": 0, "telegram_stop": 0, "telegram_block": 0}
    for k, (ri, t) in enumerate(zip(oo.tolist(), oo_t.tolist(), strict=True)):
        p = int(lat.person[ri])
        nm = str(names[ri])
        if lat.channel[ri] == 0:
            seq += 1
            events["whatsapp"].append((t, wa_inbound(str(wa_phone[p]), nm, "STOP", t, None, seq)))
            opt_outs["whatsapp_stop"] += 1
        elif k % 2 == 0:
            events["telegram"].append(
                (t, tg_message(int(telegram_chat_id(np.array([p]))[0]), nm, "STOP", t, None))
            )
            opt_outs["telegram_stop"] += 1
        else:
            events["telegram"].append((t, tg_block(int(telegram_chat_id(np.array([p]))[0]), nm, t)))
            opt_outs["telegram_block"] += 1

    info: dict[str, Any] = {"webhook_days": webhook_days, "opt_outs": opt_outs}
    for provider, evs in events.items():
        path = out_dir / "webhooks" / f"{provider}.jsonl"
        info[provider] = _write_webhooks(path, provider, evs, rng, secrets)
        man.add(path, info[provider]["requests"])
    return {"webhooks": info, "holdout": int(holdout.sum())}


def _write_webhooks(
    path: Path, provider: str, events: list[tuple[int, str]], rng: np.random.Generator, secrets: Any
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
    # one request line per event (a duplicate repeats it); headers as json.dumps would
    # write them, with the signature from a keyed HMAC copied per body
    route = {"whatsapp": WA_PATH, "telegram": TG_PATH, "sms": SMS_PATH}[provider]
    head = '{"method":"POST","path":"' + route + '","headers":{"Content-Type":"application/json",'
    if provider == "telegram":
        token = json.dumps(secrets.telegram_secret_token)
        sign = None
        head += '"X-Telegram-Bot-Api-Secret-Token":' + token + '},"body":'
    else:
        key = secrets.whatsapp_app_secret if provider == "whatsapp" else secrets.sms_webhook_secret
        sign = hmac.new(key.encode(), digestmod=hashlib.sha256)
        header = "X-Hub-Signature-256" if provider == "whatsapp" else "X-Signature"
        head += '"' + header + '":"sha256='
    lines = []
    for i in by_time.tolist():
        body = events[i][1]
        if sign is None:
            lines.append(head + _encode_str(body) + "}\n")
        else:
            mac = sign.copy()
            mac.update(body.encode())
            lines.append(head + mac.hexdigest() + '"},"body":' + _encode_str(body) + "}\n")
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
