"""Historical trigger sends: `messages/sends.jsonl`, one line per planned message.

Provider message ids: WhatsApp `wamid.…`; Telegram `<chat_id>:<message_id>` (a Bot API
message id is only unique inside its chat, and the chat id is what replies and blocks
carry); SMS `sms-…`. The webhooks these sends caused are written by `webhooks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from simulation.ecosystem import _lines
from simulation.ecosystem.common import Manifest, local_to_utc
from simulation.ecosystem.history import History
from simulation.ecosystem.model import CHANNELS, TRIGGERS

if TYPE_CHECKING:
    from simulation.ecosystem.crm import CrmView

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


@dataclass
class OrderedSends:
    """The historical sends in file order (planned time, then relationship): row i is
    message `M<i + 1>`."""

    rel: np.ndarray
    business: np.ndarray
    person: np.ndarray
    channel: np.ndarray  # index into model.CHANNELS
    trigger: np.ndarray  # index into model.TRIGGERS
    day: np.ndarray  # the planned local day (history day number)
    planned: np.ndarray  # the planned time, UTC epoch seconds
    holdout: np.ndarray
    offer: np.ndarray  # partner offer index, -1 none
    provider_ids: np.ndarray  # (n, w) JSON tokens: quoted ids, `null` for holdout


def write_sends(
    out_dir: Path, man: Manifest, h: History, view: CrmView, rng: np.random.Generator
) -> OrderedSends:
    """messages/sends.jsonl; returns the sends in its order (webhooks.write_webhooks
    makes their provider events). Draws the planned times (local 10:00–20:00)."""
    sends = order_sends(h, view, rng)
    campaign, campaign_names = _campaigns(sends, h)
    n_offers = len(h.offers)
    tables = {
        "business_id": _lines.id_tokens("B", np.arange(1, len(h.biz) + 1), 5),
        "customer_phone": _lines.string_tokens(h.phone_e164),
        "trigger": _lines.token_table([f'"{t}"' for t in TRIGGERS]),
        "campaign_id": _lines.string_tokens(campaign_names),
        "channel": _lines.token_table([f'"{c}"' for c in CHANNELS]),
        "holdout": _lines.token_table(["false", "true"]),
        # offers 0..n-1, then null
        "offer_id": _lines.token_table(
            [f'"O{i + 1:04d}"' for i in range(n_offers)] + ["null"], align="right"
        ),
    }
    prov = sends.provider_ids
    widths = {"message_id": 13, "planned_at": 22, "provider_message_id": prov.shape[1]}
    widths.update({k: t.shape[1] for k, t in tables.items()})
    layout = _lines.Layout([(f, widths[f]) for f in _SEND_FIELDS])
    n = len(sends.rel)
    path = out_dir / "messages" / "sends.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        for lo in range(0, n, _CHUNK):
            sl = slice(lo, min(n, lo + _CHUNK))
            out = layout.new(sl.stop - sl.start)
            ids = _lines.id_tokens("M", np.arange(sl.start, sl.stop) + 1, 10)
            layout.put(out, "message_id", ids)
            layout.take(out, "business_id", tables, sends.business[sl])
            layout.take(out, "customer_phone", tables, sends.person[sl])
            layout.take(out, "trigger", tables, sends.trigger[sl])
            layout.take(out, "campaign_id", tables, campaign[sl])
            layout.take(out, "channel", tables, sends.channel[sl])
            layout.take(out, "holdout", tables, sends.holdout[sl].astype(np.int64))
            layout.put(out, "planned_at", view.timestamps.render(sends.planned[sl], quoted=True))
            offer = sends.offer[sl]
            layout.take(out, "offer_id", tables, np.where(offer < 0, n_offers, offer))
            layout.put(out, "provider_message_id", prov[sl])
            _lines.write_matrix(fh, out)
    man.add(path, n)
    return sends


def order_sends(h: History, view: CrmView, rng: np.random.Generator) -> OrderedSends:
    """The simulated sends with planned times drawn, in file order."""
    sends, lat = h.res.sends, h.lat
    minute = rng.integers(10 * 60, 20 * 60, size=len(sends.rel))
    planned = local_to_utc(h.day0_epoch + sends.day, minute, view.rel_tz[sends.rel], view.zones)
    order = np.lexsort((sends.rel, planned))
    rel = sends.rel[order]
    holdout = sends.holdout[order]
    channel = lat.channel[rel]
    person = lat.person[rel]
    chat = telegram_chat_id(person)
    per_chat = pd.Series(chat).groupby(chat).cumcount().to_numpy() + 1
    return OrderedSends(
        rel=rel,
        business=lat.business[rel],
        person=person,
        channel=channel,
        trigger=sends.trigger[order],
        day=sends.day[order],
        planned=planned[order],
        holdout=holdout,
        offer=sends.offer[order],
        provider_ids=_provider_ids(channel, holdout, chat, per_chat),
    )


def _campaigns(sends: OrderedSends, h: History) -> tuple[np.ndarray, np.ndarray]:
    """Each send's campaign (code) and the campaign ids `<trigger>-<business>-<YYYY-MM>`
    (per 30-day planning period), rendered once per combination."""
    n = len(sends.rel)
    period = sends.day // 30
    n_bus, n_periods = len(h.biz), int(period.max()) + 1 if n else 1
    labels = (
        (h.day0_epoch + 30 * np.arange(n_periods))
        .astype("datetime64[D]")
        .astype("datetime64[M]")
        .astype(str)
    )
    combos, campaign = np.unique(
        (sends.trigger * n_bus + sends.business) * n_periods + period, return_inverse=True
    )
    biz_ids = h.biz["id"].to_numpy()
    names = [
        f"{TRIGGERS[k // n_periods // n_bus]}-{biz_ids[k // n_periods % n_bus]}-"
        f"{labels[k % n_periods]}"
        for k in combos.tolist()
    ]
    return campaign, np.array(names, dtype=object)


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
    """The Telegram chat id of each person (a private chat's id is the user's id)."""
    return 5_000_000_000 + np.asarray(person, dtype=np.int64) * 7 + 3
