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
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ingestion.synthetic import _lines
from ingestion.synthetic.common import (
    arrow_json_lines,
    bytes_to_arrow,
    local_to_utc,
    write_arrow_lines,
)
from ingestion.synthetic.model import CHANNELS, HISTORY_DAYS, TRIGGERS

_encode_str = json.encoder.encode_basestring  # type: ignore[attr-defined]
WA_PATH, TG_PATH, SMS_PATH = "/webhooks/whatsapp", "/webhooks/telegram", "/webhooks/sms"
DUPLICATE_SHARE = 0.02
LATE_SHARE = 0.03
REPLIES = ("Спасибо!", "Записаться можно на субботу?", "ok", "Danke!", "Рахмет!", "👍")


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
    msg_no = np.arange(n)
    msg_id = bytes_to_arrow(
        np.concatenate([np.full((n, 1), ord("M"), np.uint8), _lines.digits(msg_no + 1, 10)], 1)
    )
    chat = telegram_chat_id(person)
    per_chat = pd.Series(chat).groupby(chat).cumcount().to_numpy() + 1
    num = pc.cast(pa.array(msg_no + 1), pa.string())
    prov_all = {
        0: pc.binary_join_element_wise("wamid.HBgL", pc.utf8_lpad(num, 12, "0"), ""),
        1: pc.binary_join_element_wise(
            pc.cast(pa.array(chat), pa.string()), ":", pc.cast(pa.array(per_chat), pa.string()), ""
        ),
        2: pc.binary_join_element_wise("sms-", pc.utf8_lpad(num, 10, "0"), ""),
    }
    prov = pc.if_else(
        pa.array(channel == 0),
        prov_all[0],
        pc.if_else(pa.array(channel == 1), prov_all[1], prov_all[2]),
    )
    prov = pc.if_else(pa.array(holdout), pa.nulls(n, pa.string()), prov)
    prov_np = prov.to_numpy(zero_copy_only=False)
    bid_arr = pa.array(biz["id"].tolist(), pa.string()).take(pa.array(lat.business[rel]))
    period = day // 30
    labels = (
        (day0_epoch + 30 * np.arange(period.max() + 1 if n else 1))
        .astype("datetime64[D]")
        .astype("datetime64[M]")
        .astype(str)
    )
    period_label = pa.array(labels).take(pa.array(period))
    trig_names = pa.array(list(TRIGGERS)).take(pa.array(trig))
    campaign = pc.binary_join_element_wise(trig_names, bid_arr, period_label, "-")
    offer_ids = np.array(
        [None if o < 0 else f"O{o + 1:04d}" for o in range(-1, len(offers))], dtype=object
    )[offer + 1]
    lines = arrow_json_lines(
        [
            ("message_id", msg_id, "str"),
            ("business_id", bid_arr, "str"),
            ("customer_phone", pa.array(e164_np[person], pa.string()), "str"),
            ("trigger", trig_names, "str"),
            ("campaign_id", campaign, "str"),
            ("channel", pa.array(list(CHANNELS)).take(pa.array(channel)), "str"),
            (
                "holdout",
                pa.array(["false", "true"]).take(pa.array(holdout.astype(np.int64))),
                "raw",
            ),
            ("planned_at", bytes_to_arrow(ts.render(planned)), "str"),
            ("offer_id", pa.array(offer_ids, pa.string()), "str"),
            ("provider_message_id", prov, "str"),
        ]
    )
    path = out_dir / "messages" / "sends.jsonl"
    man.add(path, write_arrow_lines(path, lines))

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
        pid = str(prov_np[i])
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
    evs = sorted(events, key=lambda e: e[0])
    n = len(evs)
    delay = rng.uniform(0, 2, size=n)
    late = rng.random(n) < LATE_SHARE
    delay[late] = rng.uniform(60, 3600, size=int(late.sum()))
    dup = rng.random(n) < DUPLICATE_SHARE
    dup_delay = rng.uniform(1, 300, size=n)
    arrivals = [(evs[i][0] + delay[i], i) for i in range(n)]
    arrivals += [(evs[i][0] + delay[i] + dup_delay[i], i) for i in np.flatnonzero(dup).tolist()]
    arrivals.sort()
    path.parent.mkdir(parents=True, exist_ok=True)
    route = {"whatsapp": WA_PATH, "telegram": TG_PATH, "sms": SMS_PATH}[provider]
    cache: dict[int, str] = {}
    with path.open("w", encoding="utf-8") as fh:
        for _, i in arrivals:
            line = cache.get(i)
            if line is None:
                body = evs[i][1]
                raw = body.encode()
                headers = {"Content-Type": "application/json"}
                if provider == "whatsapp":
                    headers["X-Hub-Signature-256"] = (
                        "sha256="
                        + hmac.new(
                            secrets.whatsapp_app_secret.encode(), raw, hashlib.sha256
                        ).hexdigest()
                    )
                elif provider == "sms":
                    headers["X-Signature"] = (
                        "sha256="
                        + hmac.new(
                            secrets.sms_webhook_secret.encode(), raw, hashlib.sha256
                        ).hexdigest()
                    )
                else:
                    headers["X-Telegram-Bot-Api-Secret-Token"] = secrets.telegram_secret_token
                line = (
                    '{"method":"POST","path":"'
                    + route
                    + '","headers":'
                    + json.dumps(headers, separators=(",", ":"))
                    + ',"body":'
                    + _encode_str(body)
                    + "}"
                )
                cache[i] = line
            fh.write(line + "\n")
    inversions = int(sum(1 for a, b in itertools.pairwise(arrivals) if evs[b[1]][0] < evs[a[1]][0]))
    return {
        "requests": len(arrivals),
        "events": n,
        "duplicates": int(dup.sum()),
        "out_of_order": inversions,
    }
