"""Partner offers ("lots") and the cashback partners' event feeds in three formats.

Partners (ids, time zones, currencies, rates) match ingestion/partners/partners.yaml:
`p1` canonical JSONL (Moscow, RUB, 5%), `p2` Russian CSV export (Yekaterinburg, RUB, 3%),
`p3` nested JSON batches in minor units (Almaty, KZT, 4%). Every purchase
(target action) earns an accrual at the partner's rate; some purchases are refunded
later (a reversal of the accrual, sometimes after the cashback was spent, so balances
can go negative); customers redeem cashback. A few deliberately bad rows per partner
are recorded in truth/bad_rows.csv; they are extra rows outside the ledger.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from simulation.ecosystem.common import money_str, write_json_lines
from simulation.ecosystem.model import HISTORY_DAYS

PARTNERS = (
    {
        "partner_id": "p1",
        "format": "canonical_jsonl",
        "timezone": "Europe/Moscow",
        "currency": "RUB",
        "cashback_rate": "0.05",
        "country": 0,
        "files": "events_*.jsonl",
    },
    {
        "partner_id": "p2",
        "format": "delimited",
        "timezone": "Asia/Yekaterinburg",
        "currency": "RUB",
        "cashback_rate": "0.03",
        "country": 0,
        "files": "export_*.csv",
    },
    {
        "partner_id": "p3",
        "format": "nested_json",
        "timezone": "Asia/Almaty",
        "currency": "KZT",
        "cashback_rate": "0.04",
        "country": 1,
        "files": "batch_*.json",
    },
)
P2_TYPES = {
    "target_action": ("Целевое действие", "Визит"),
    "accrual": ("Начисление",),
    "reversal": ("Отмена", "Сторно"),
    "redemption": ("Списание",),
}
P3_TYPES = {
    "target_action": "action",
    "accrual": "earn",
    "reversal": "cancel",
    "redemption": "burn",
}
P2_COLUMNS = ("Номер операции", "Тип", "Телефон", "Сумма", "Валюта", "Дата", "Акция")
P3_BATCH = 500


def make_offers(rng: np.random.Generator, biz: pd.DataFrame, lat: Any) -> pd.DataFrame:
    """Offers: a publisher wants N new clients aged 18–45 (some: women only), gives 10%
    off and pays a reward per client; distributors are other businesses of its city (or
    country; the first six businesses cover two countries with several businesses)."""
    n_bus = len(biz)
    n = max(2, n_bus // 10)
    counts = np.bincount(lat.business, minlength=n_bus)
    # a country's only business publishes no offers: its distributors would be abroad, and
    # customers converted across borders carry phones spelled for another country
    country = biz["country"].to_numpy()
    publishers = np.flatnonzero(pd.Series(country).map(pd.Series(country).value_counts()) > 1)
    rows = []
    for i in range(n):
        pub = int(publishers[rng.integers(0, len(publishers))])
        same_city = np.flatnonzero(biz["city_idx"].to_numpy() == biz.at[pub, "city_idx"])
        same_city = same_city[same_city != pub]
        if len(same_city) < 2:
            same_city = np.flatnonzero(country == country[pub])
            same_city = same_city[same_city != pub]
        dist = np.sort(
            rng.choice(same_city, size=min(len(same_city), int(rng.integers(2, 5))), replace=False)
        )
        start = int(rng.integers(0, HISTORY_DAYS - 150))
        currency = biz.at[pub, "currency"]
        reward = {"RUB": 50000, "KZT": 250000, "EUR": 1000}[currency] * int(rng.integers(1, 4))
        kind = biz.at[pub, "kind"]
        rows.append(
            {
                "idx": i,
                "publisher_idx": pub,
                "distributor_idx": dist.tolist(),
                "valid_from_day": start,
                "valid_to_day": start + int(rng.integers(60, 181)),
                "capacity": max(5, int(counts[dist].sum() * 0.04)),
                "min_age": 18,
                "max_age": 45,
                "gender": "f" if kind == "salon" and rng.random() < 0.5 else None,
                "discount_pct": 10,
                "reward_minor": reward,
                "cashback_pct": 0,
                "currency": currency,
                "title": f"Новые клиенты для {biz.at[pub, 'name']}",
            }
        )
    offers = pd.DataFrame(rows)
    # object dtype keeps None for "any gender" (pandas would infer str with NaN)
    offers["gender"] = pd.Series([r["gender"] for r in rows], dtype=object)
    return offers


def write_offers(
    out_dir: Path, man: Any, offers: pd.DataFrame, biz: pd.DataFrame, day0: date
) -> int:
    ids = biz["id"].to_numpy()
    path = out_dir / "partners" / "offers.jsonl"
    n = write_json_lines(
        path,
        (
            {
                "offer_id": f"O{o.idx + 1:04d}",
                "publisher_business_id": str(ids[o.publisher_idx]),
                "title": o.title,
                "distributor_business_ids": [str(ids[d]) for d in o.distributor_idx],
                "reward_per_client": money_str(o.reward_minor),
                "discount_pct": int(o.discount_pct),
                "cashback_pct": int(o.cashback_pct),
                "currency": o.currency,
                "capacity": int(o.capacity),
                "audience": {"min_age": o.min_age, "max_age": o.max_age, "gender": o.gender},
                "valid_from": (day0 + timedelta(days=o.valid_from_day)).isoformat(),
                "valid_to": (day0 + timedelta(days=o.valid_to_day)).isoformat(),
            }
            for o in offers.itertuples()
        ),
    )
    man.add(path, n)
    return n


def _ledger(
    rng: np.random.Generator, n_people: int, rate_bp: int, scale: int, start_s: int
) -> list[dict]:
    """Events of one partner: dicts with person, type, amount_minor, t (UTC epoch s)."""
    events: list[dict] = []
    horizon = HISTORY_DAYS * 86_400
    for p in range(n_people):
        k = 1 + int(rng.poisson(3))
        times = np.sort(rng.integers(0, horizon - 86_400 * 3, size=k)) + start_s
        bal = 0
        pending: list[tuple[int, int]] = []  # (time, amount) reversals to come
        for t in times.tolist():
            amount = round(rng.lognormal(np.log(1500), 0.6) * scale) // 10 * 10
            accr = amount * rate_bp // 10_000
            events.append({"person": p, "type": "target_action", "amount": amount, "t": t})
            events.append({"person": p, "type": "accrual", "amount": accr, "t": t + 120})
            bal += accr
            if rng.random() < 0.1:
                pending.append((t + int(rng.integers(1, 20)) * 86_400, accr))
            if bal > 0 and rng.random() < 0.35:
                spend = max(1, int(bal * rng.uniform(0.5, 1.0)))
                events.append(
                    {
                        "person": p,
                        "type": "redemption",
                        "amount": spend,
                        "t": t + 600 + int(rng.integers(0, 5)) * 86_400,
                    }
                )
                bal -= spend
        for t, a in pending:
            events.append(
                {"person": p, "type": "reversal", "amount": a, "t": min(t, start_s + horizon - 60)}
            )
    events.sort(key=lambda e: (e["t"], e["person"]))
    return events


def write_partner_feeds(
    out_dir: Path,
    man: Any,
    rng: np.random.Generator,
    persons: pd.DataFrame,
    e164_np: np.ndarray,
    day0_epoch: int,
    include_broken_files: bool,
) -> dict[str, Any]:
    root = out_dir / "partners"
    country = persons["country"].to_numpy()
    national = persons["national"].to_numpy()
    start_s = day0_epoch * 86_400
    bad_rows: list[dict[str, Any]] = []
    balances: list[dict[str, Any]] = []
    info = []
    for spec in PARTNERS:
        pid = spec["partner_id"]
        pool = np.flatnonzero(country == spec["country"])
        n_people = min(len(pool), max(20, int(0.01 * len(pool))))
        people = np.sort(rng.choice(pool, size=n_people, replace=False))
        rate_bp = round(float(spec["cashback_rate"]) * 10_000)
        scale = 550 if spec["currency"] == "KZT" else 100
        events = _ledger(rng, n_people, rate_bp, scale, start_s)
        tz = ZoneInfo(spec["timezone"])
        for k, e in enumerate(events):
            e["event_id"] = f"{pid}-{k + 1:07d}"
            e["phone"] = str(e164_np[people[e["person"]]])
            e["national"] = int(national[people[e["person"]]])
            e["offer"] = (
                f"cb-{pid}-{datetime.fromtimestamp(e['t'], UTC).year}"
                if e["type"] in ("target_action", "accrual")
                else None
            )
        sign = {"target_action": 0, "accrual": 1, "reversal": -1, "redemption": -1}
        bal: dict[str, int] = {}
        for e in events:
            bal[e["phone"]] = bal.get(e["phone"], 0) + sign[e["type"]] * e["amount"]
        balances.extend(
            {"partner_id": pid, "phone": ph, "balance": money_str(v), "currency": spec["currency"]}
            for ph, v in sorted(bal.items())
        )
        folder = root / pid
        folder.mkdir(parents=True, exist_ok=True)
        writer = {"p1": _write_p1, "p2": _write_p2, "p3": _write_p3}[pid]
        bad_rows.extend(writer(folder, man, events, spec, tz))
        info.append(
            {k: v for k, v in spec.items() if k != "country"}
            | {"events": len(events), "people": n_people}
        )
    if include_broken_files:
        broken = out_dir / "broken" / "partners"
        (broken / "p3").mkdir(parents=True, exist_ok=True)
        (broken / "p3" / "batch_broken.json").write_text(
            '{"batch": "b-broken", "items": [{"id": "x", '
        )
        (broken / "p2").mkdir(parents=True, exist_ok=True)
        (broken / "p2" / "export_broken.csv").write_bytes(
            "Номер;Сумма\n1;12,5\n".encode("cp1251") + b"\xff\xfe\x00garbage\n"
        )
        man.add(broken / "p3" / "batch_broken.json", 0, broken=True)
        man.add(broken / "p2" / "export_broken.csv", 0, broken=True)
    return {"partners": info, "bad_rows": bad_rows, "balances": balances}


def _bad(
    pid: str, file: str, locator: str, event_id: str, field: str, value: Any, reason: str
) -> dict:
    return {
        "source": "partner",
        "entity": pid,
        "business_id": "",
        "record_id": event_id,
        "field": field,
        "value": str(value),
        "reason": reason,
        "file": file,
        "locator": locator,
    }


def _month(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y%m")


def _write_p1(folder: Path, man: Any, events: list[dict], spec: dict, tz: ZoneInfo) -> list[dict]:
    by_month: dict[str, list[dict]] = {}
    for e in events:
        by_month.setdefault(_month(e["t"]), []).append(
            {
                "event_id": e["event_id"],
                "partner_id": "p1",
                "event_type": e["type"],
                "phone": e["phone"],
                "amount": money_str(e["amount"]),
                "currency": spec["currency"],
                "occurred_at": datetime.fromtimestamp(e["t"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "offer_id": e["offer"],
            }
        )
    last = max(by_month)
    bad_specs = [
        ("phone", "+7 916 12", "bad phone"),
        ("amount", "12,3.4x", "bad amount"),
        ("occurred_at", "2026-02-30T10:00:00Z", "bad date"),
    ]
    bads = []
    for k, (fld, val, reason) in enumerate(bad_specs):
        rec = dict(by_month[last][0])
        rec["event_id"] = f"p1-bad-{k + 1}"
        rec[fld] = val
        by_month[last].append(rec)
        bads.append(
            _bad(
                "p1",
                f"partners/p1/events_{last}.jsonl",
                f"line {len(by_month[last])}",
                rec["event_id"],
                fld,
                val,
                reason,
            )
        )
    for m, recs in sorted(by_month.items()):
        path = folder / f"events_{m}.jsonl"
        man.add(path, write_json_lines(path, recs))
    return bads


def _p2_amount(minor: int) -> str:
    return f"{minor // 100},{minor % 100:02d}"


def _write_p2(folder: Path, man: Any, events: list[dict], spec: dict, tz: ZoneInfo) -> list[dict]:
    by_month: dict[str, list[list[str]]] = {}
    for k, e in enumerate(events):
        local = datetime.fromtimestamp(e["t"], tz)
        # some exports carry only the date
        when = local.strftime("%d.%m.%Y") if k % 10 == 3 else local.strftime("%d.%m.%Y %H:%M")
        n = e["national"]
        phone = (
            f"8 ({n // 10**7}) {n // 10**4 % 1000:03d}-{n // 100 % 100:02d}-{n % 100:02d}"
            if k % 2
            else f"+7{n}"
        )
        names = P2_TYPES[e["type"]]
        by_month.setdefault(local.strftime("%Y%m"), []).append(
            [
                str(100_000 + k),
                names[k % len(names)],
                phone,
                _p2_amount(e["amount"]),
                spec["currency"],
                when,
                e["offer"] or "",
            ]
        )
        e["p2_id"] = str(100_000 + k)
    last = max(by_month)
    tmpl = by_month[last][0]
    bads = []
    for k, (col, val, reason) in enumerate(
        [
            (5, "31.02.2026 10:00", "bad date"),
            (3, "—", "bad amount"),
            (2, "8 (912) 345", "bad phone"),
        ]
    ):
        row = list(tmpl)
        row[0] = str(900_000 + k)
        row[col] = val
        by_month[last].append(row)
        bads.append(
            _bad(
                "p2",
                f"partners/p2/export_{last}.csv",
                f"row {len(by_month[last])}",
                row[0],
                (
                    "event_id",
                    "event_type",
                    "phone",
                    "amount",
                    "currency",
                    "occurred_at",
                    "offer_id",
                )[col],
                val,
                reason,
            )
        )
    for m, rows in sorted(by_month.items()):
        buf = io.StringIO()
        w = csv.writer(buf, delimiter=";", lineterminator="\r\n")
        w.writerow(P2_COLUMNS)
        w.writerows(rows)
        path = folder / f"export_{m}.csv"
        path.write_bytes(buf.getvalue().encode("utf-8-sig"))
        man.add(path, len(rows))
    return bads


def _write_p3(folder: Path, man: Any, events: list[dict], spec: dict, tz: ZoneInfo) -> list[dict]:
    items = []
    for k, e in enumerate(events):
        local = datetime.fromtimestamp(e["t"], tz)
        items.append(
            {
                "id": f"kz-{k + 1:08d}",
                "kind": P3_TYPES[e["type"]],
                "customer": {"msisdn": e["phone"].lstrip("+")},
                "money": {"amount_minor": e["amount"], "currency": spec["currency"]},
                "ts": local.isoformat() if k % 3 else e["t"],
                "promo": {"id": e["offer"]} if e["offer"] else None,
            }
        )
    bads = []
    n_batches = (len(items) + P3_BATCH - 1) // P3_BATCH
    last_batch = n_batches - 1
    for k, (path_, val, reason) in enumerate(
        [
            (("customer", "msisdn"), "12345", "bad phone"),
            (("money", "amount_minor"), "сто", "bad amount"),
            (("ts",), "2026-13-45T10:00:00+05:00", "bad date"),
        ]
    ):
        rec = json.loads(json.dumps(items[0]))
        rec["id"] = f"kz-bad-{k + 1}"
        target = rec
        for key in path_[:-1]:
            target = target[key]
        target[path_[-1]] = val
        items.append(rec)
        pos = len(items) - 1 - last_batch * P3_BATCH
        bads.append(
            _bad(
                "p3",
                f"partners/p3/batch_{last_batch + 1:04d}.json",
                f"item {pos + 1}",
                rec["id"],
                {"msisdn": "phone", "amount_minor": "amount", "ts": "occurred_at"}[path_[-1]],
                val,
                reason,
            )
        )
    for b in range(n_batches):
        chunk = (
            items[b * P3_BATCH : (b + 1) * P3_BATCH] if b < last_batch else items[b * P3_BATCH :]
        )
        path = folder / f"batch_{b + 1:04d}.json"
        path.write_text(
            json.dumps(
                {"batch": f"kz-batch-{b + 1:04d}", "items": chunk}, ensure_ascii=False, indent=1
            ),
            encoding="utf-8",
        )
        man.add(path, len(chunk))
    return bads
