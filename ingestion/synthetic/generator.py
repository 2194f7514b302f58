"""`generate()`: the whole synthetic ecosystem in the native forms of ingestion/SOURCES.md."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ingestion.synthetic import _lines, messaging, partners
from ingestion.synthetic.common import (
    arrow_json_lines,
    bytes_to_arrow,
    local_to_utc,
    money_str,
    write_arrow_lines,
    write_json_lines,
)
from ingestion.synthetic.model import (
    EFFECT_DAYS,
    FUTURE_DAYS,
    HISTORY_DAYS,
    HOLDOUT_SHARE,
    OUT_COMPLETED,
    PARTNER_CONVERSION,
    T_PARTNER,
    TRIGGERS,
    UPLIFT,
    Simulator,
    concat_latent,
    draw_latent,
    plan_partner_offers,
)
from ingestion.synthetic.world import (
    CITIES,
    FIRST,
    INVALID_KINDS,
    KIND_NAMES,
    LAST,
    NAME_POOL,
    assign_relationships,
    e164,
    make_businesses,
    make_locations_services,
    make_persons,
    spell_phones,
)
from revisit.settings import Settings

SCALES: dict[str, int] = {"test": 1_000, "demo": 20_000, "bench": 1_000_000}
DEFAULT_AS_OF = date(2026, 11, 1)
CUSTOMERS_PER_BUSINESS = 400
GENERATOR_VERSION = 1
_EPOCH = date(1970, 1, 1)
_CHUNK = 1_000_000


def _dev_secret(name: str) -> str:
    # the field default, not the environment: output must not depend on REVISIT_* vars
    return Settings.model_fields[name].default.get_secret_value()


@dataclass(frozen=True)
class WebhookSecrets:
    """Secrets the webhook requests are signed with (defaults: the dev defaults of
    revisit/settings.py)."""

    whatsapp_app_secret: str = field(default_factory=lambda: _dev_secret("whatsapp_app_secret"))
    telegram_secret_token: str = field(default_factory=lambda: _dev_secret("telegram_secret_token"))
    sms_webhook_secret: str = field(default_factory=lambda: _dev_secret("sms_webhook_secret"))


class _Manifest:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, dict[str, Any]] = {}

    def add(self, path: Path, rows: int, **extra: Any) -> None:
        self.files[path.relative_to(self.root).as_posix()] = {"rows": int(rows), **extra}


def generate(
    out_dir: Path,
    *,
    customers: int,
    seed: int = 7,
    as_of: date | None = None,
    secrets: WebhookSecrets | None = None,
    include_broken_files: bool = False,
    export_businesses: int | None = None,
    webhook_days: int = 30,
    invalid_phone_share: float = 0.01,
) -> dict[str, Any]:
    """Write a synthetic ecosystem of `customers` people into `out_dir` (replaced if it
    exists) and return the manifest (also written to `out_dir/manifest.json`).

    Same arguments → byte-identical files. `as_of` (default 2026-11-01) is the local date
    the history ends: 540 days of history before it, future scheduled appointments up to
    30 days after it. `export_businesses` businesses (default ~5%, the smallest, at most
    20) deliver CRM file drops instead of the API. Webhook requests cover the sends of
    the last `webhook_days` days. See ingestion/SOURCES.md for every file.
    """
    if customers < 100:
        raise ValueError("customers must be at least 100")
    as_of = as_of or DEFAULT_AS_OF
    secrets = secrets or WebhookSecrets()
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    streams = np.random.SeedSequence(seed).spawn(8)
    rng_world, rng_lat, rng_offer, rng_sim, rng_out, rng_msg, rng_partner, _spare = (
        np.random.default_rng(s) for s in streams
    )
    as_of_epoch = (as_of - _EPOCH).days
    day0 = as_of - timedelta(days=HISTORY_DAYS)
    day0_epoch = as_of_epoch - HISTORY_DAYS
    man = _Manifest(out_dir)

    # --- world --------------------------------------------------------------------
    n_bus = max(6, round(customers / CUSTOMERS_PER_BUSINESS))
    biz = make_businesses(rng_world, n_bus)
    locs, svcs = make_locations_services(rng_world, biz)
    persons = make_persons(rng_world, customers, biz, as_of_epoch)
    rels = assign_relationships(rng_world, persons, biz)
    kind_code = biz["kind"].map({k: i for i, k in enumerate(KIND_NAMES)}).to_numpy()
    p_country = persons["country"].to_numpy()
    lat = draw_latent(
        rng_lat,
        rels["person"].to_numpy(),
        rels["business"].to_numpy(),
        kind_code[rels["business"].to_numpy()],
        p_country[rels["person"].to_numpy()],
    )
    offers = partners.make_offers(rng_offer, biz, lat)
    birthday_day = persons["birthday"].to_numpy() - day0_epoch
    plan, conversions = plan_partner_offers(
        rng_offer, lat, offers, birthday_day, persons["gender"].to_numpy()
    )
    if len(conversions):
        conv_lat = draw_latent(
            rng_lat,
            conversions["person"].to_numpy(),
            conversions["publisher"].to_numpy(),
            kind_code[conversions["publisher"].to_numpy()],
            p_country[conversions["person"].to_numpy()],
            start_day=conversions["day"].to_numpy(),
            promo_offer=conversions["offer"].to_numpy(),
        )
        lat = concat_latent(lat, conv_lat)
    bdates = persons["birthday"].to_numpy().astype("datetime64[D]")
    months = bdates.astype("datetime64[M]")
    bmonth = months.astype(np.int64) % 12 + 1
    bday = (bdates - months.astype("datetime64[D]")).astype(np.int64) + 1
    pidx = lat.person
    sim = Simulator(
        rng_sim,
        lat,
        birthday_doy=(bmonth[pidx], bday[pidx], persons["birthday_known"].to_numpy()[pidx]),
        day0_epoch=day0_epoch,
        partner_plan=plan,
    )
    res = sim.run()

    # --- relationship attributes as the CRM knows them ------------------------------
    r = len(lat)
    phones, _formats, invalid = spell_phones(
        rng_out, p_country[pidx], persons["national"].to_numpy()[pidx], invalid_phone_share
    )
    phone_e164 = e164(persons)
    zones = sorted({c.timezone for c in CITIES})
    tz_of_biz = biz["timezone"].map({z: i for i, z in enumerate(zones)}).to_numpy()
    rel_tz = tz_of_biz[lat.business]
    rel_cust_id = np.arange(r)
    n_export = (
        export_businesses if export_businesses is not None else min(20, max(1, round(0.05 * n_bus)))
    )
    counts = np.bincount(lat.business, minlength=n_bus)
    export_set = np.sort(np.lexsort((np.arange(n_bus), counts))[:n_export]) if n_export else []
    is_export = np.zeros(n_bus, dtype=bool)
    is_export[export_set] = True
    ts = _lines.Timestamps(day0 - timedelta(days=800), as_of + timedelta(days=FUTURE_DAYS + 30))

    # businesses, locations, services (small: one json.dumps per row)
    api = out_dir / "crm" / "api"
    biz_updated = f"{(day0 - timedelta(days=800)).isoformat()}T09:00:00Z"
    man.add(
        api / "businesses.jsonl",
        write_json_lines(
            api / "businesses.jsonl",
            (
                {
                    "id": b.id,
                    "name": b.name,
                    "kind": b.kind,
                    "country": b.country,
                    "city": b.city,
                    "timezone": b.timezone,
                    "currency": b.currency,
                    "updated_at": biz_updated,
                }
                for b in biz.itertuples()
            ),
        ),
    )
    man.add(
        api / "locations.jsonl",
        write_json_lines(
            api / "locations.jsonl",
            (
                {
                    "id": x.id,
                    "business_id": x.business_id,
                    "name": x.name,
                    "city": x.city,
                    "address": x.address,
                    "timezone": x.timezone,
                    "updated_at": biz_updated,
                }
                for x in locs.itertuples()
            ),
        ),
    )
    svc_records = [
        {
            "id": x.id,
            "business_id": x.business_id,
            "name": x.name,
            "category": x.category,
            "price": money_str(x.price_minor),
            "currency": x.currency,
            "duration_min": int(x.duration_min),
            "updated_at": biz_updated,
        }
        for x in svcs.itertuples()
    ]
    svc_export = is_export[svcs["business_idx"].to_numpy()]
    man.add(
        api / "services.jsonl",
        write_json_lines(
            api / "services.jsonl",
            (s for s, e in zip(svc_records, svc_export, strict=True) if not e),
        ),
    )

    # --- customers ------------------------------------------------------------------
    culture_names = ("ru", "kz", "de", "ru_lat")
    culture = persons["culture"].to_numpy()[pidx]
    gender = persons["gender"].to_numpy()[pidx]
    first_tab = np.array(
        [[(FIRST[(cu, g)].split() * 2)[:NAME_POOL] for g in ("f", "m")] for cu in culture_names],
        dtype=object,
    )
    last_tab = np.array(
        [[(LAST[(cu, g)].split() * 2)[:NAME_POOL] for g in ("f", "m")] for cu in culture_names],
        dtype=object,
    )
    fi = persons["first_idx"].to_numpy()[pidx]
    li = persons["last_idx"].to_numpy()[pidx]
    names = pa.array(
        first_tab[culture, gender, fi] + " " + last_tab[culture, gender, li], pa.string()
    )
    bknown = persons["birthday_known"].to_numpy()[pidx]
    bday_ts = _lines.Timestamps(as_of - timedelta(days=72 * 366), as_of)
    bday_str = bytes_to_arrow(bday_ts.render_date(persons["birthday"].to_numpy()[pidx]))
    gknown = persons["gender_known"].to_numpy()[pidx]
    gender_str = pa.array(np.where(gender == 0, "f", "m"), pa.string())
    start_minute = rng_out.integers(9 * 60, 21 * 60, size=r)
    created_s = local_to_utc(day0_epoch + lat.start_day, start_minute - 30, rel_tz, zones)
    # ~5% profiles completed later: first version without birthday, a later full version
    updated_later = bknown & (rng_out.random(r) < 0.05) & (invalid < 0)
    upd_s = created_s + (
        rng_out.random(r) * (day0_epoch * 86_400 + HISTORY_DAYS * 86_400 - created_s)
    ).astype(np.int64)
    cust_id_str = bytes_to_arrow(
        np.concatenate([np.full((r, 1), ord("C"), np.uint8), _lines.digits(rel_cust_id + 1, 9)], 1)
    )
    biz_id_arr = np.array(biz["id"].tolist(), dtype=object)
    rel_biz_id = pa.array(biz_id_arr[lat.business], pa.string())
    created_str = bytes_to_arrow(ts.render(created_s))
    consent_tok = pa.array(np.where(lat.consent, "true", "false"), pa.string())
    null_str = pa.nulls(r, pa.string())

    def customer_lines(birthday_mask: np.ndarray, updated: pa.Array) -> pa.Array:
        return arrow_json_lines(
            [
                ("id", cust_id_str, "str"),
                ("business_id", rel_biz_id, "str"),
                ("phone", phones, "str"),
                ("name", names, "str"),
                (
                    "birthday",
                    pa.array(
                        np.where(birthday_mask, bday_str.to_numpy(zero_copy_only=False), None),
                        pa.string(),
                    ),
                    "str",
                ),
                (
                    "gender",
                    pa.array(
                        np.where(gknown, gender_str.to_numpy(zero_copy_only=False), None),
                        pa.string(),
                    ),
                    "str",
                ),
                ("marketing_consent", consent_tok, "raw"),
                ("created_at", created_str, "str"),
                ("updated_at", updated, "str"),
            ]
        )

    _ = null_str
    v1 = customer_lines(bknown & ~updated_later, created_str)
    v2 = customer_lines(bknown, bytes_to_arrow(ts.render(upd_s)))
    rel_export = is_export[lat.business]
    api_rows = np.flatnonzero(~rel_export)
    upd_rows = np.flatnonzero(~rel_export & updated_later)
    n_cust = write_arrow_lines(api / "customers.jsonl", v1.take(pa.array(api_rows)))
    n_cust += write_arrow_lines(api / "customers.jsonl", v2.take(pa.array(upd_rows)), mode="ab")
    man.add(api / "customers.jsonl", n_cust)

    # --- appointments ---------------------------------------------------------------
    appt = _appointments(res, lat, biz, locs, svcs, offers, rng_out, day0_epoch, rel_tz, zones)
    n_appt_api = _write_appointments_api(
        api / "appointments.jsonl", appt, ts, is_export, biz_id_arr
    )
    man.add(api / "appointments.jsonl", n_appt_api["lines"], records=n_appt_api["records"])

    # --- CRM file drops -------------------------------------------------------------
    exports = _write_exports(
        out_dir,
        man,
        export_set,
        biz,
        svcs,
        appt,
        ts,
        lat,
        phones,
        names,
        bday_str,
        bknown,
        gender_str,
        gknown,
        created_str,
        cust_id_str,
    )

    # --- messages, webhooks, partners, truth ----------------------------------------
    e164_np = phone_e164.to_numpy(zero_copy_only=False)
    msg_info = messaging.write_messages(
        out_dir,
        man,
        res.sends,
        lat,
        biz,
        offers,
        e164_np,
        rel_tz,
        zones,
        day0_epoch,
        ts,
        rng_msg,
        secrets,
        webhook_days,
        names.to_numpy(zero_copy_only=False),
    )
    partners.write_offers(out_dir, man, offers, biz, day0)
    partner_info = partners.write_partner_feeds(
        out_dir, man, rng_partner, persons, e164_np, day0_epoch, include_broken_files
    )
    truth_info = _write_truth(
        out_dir,
        man,
        res,
        lat,
        biz,
        e164_np,
        invalid,
        phones,
        day0,
        conversions,
        offers,
        appt,
        msg_info,
        partner_info,
        rel_export,
    )

    manifest: dict[str, Any] = {
        "generator": "ingestion.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "scale": next((k for k, v in SCALES.items() if v == customers), "custom"),
        "customers": customers,
        "as_of": as_of.isoformat(),
        "history_start": day0.isoformat(),
        "future_until": (as_of + timedelta(days=FUTURE_DAYS)).isoformat(),
        "secrets": asdict(secrets),
        "counts": {
            "businesses": int(n_bus),
            "locations": len(locs),
            "services": len(svcs),
            "people": int(customers),
            "customer_records": int(r),
            "appointments": int(appt["n"]),
            "sends": len(res.sends.rel),
            "offers": len(offers),
            "partner_conversions": len(conversions),
        },
        "crm_export_businesses": exports,
        "webhooks": msg_info["webhooks"],
        "partners": partner_info["partners"],
        "truth": truth_info,
        "files": dict(sorted(man.files.items())),
    }
    (out_dir / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return manifest


# ------------------------------------------------------------------------ appointments


def _appointments(
    res: Any,
    lat: Any,
    biz: pd.DataFrame,
    locs: pd.DataFrame,
    svcs: pd.DataFrame,
    offers: pd.DataFrame,
    rng: np.random.Generator,
    day0_epoch: int,
    rel_tz: np.ndarray,
    zones: list[str],
) -> dict[str, Any]:
    """Appointment records (latest state) in simulation order, plus which get an earlier
    `scheduled` version. Future slots are kept only if booked before as_of."""
    day, lead = res.ev_day.astype(np.int64), res.ev_lead.astype(np.int64)
    keep = (day < HISTORY_DAYS) | (day - lead < HISTORY_DAYS)
    rel = res.ev_rel[keep]
    day, lead = day[keep], lead[keep]
    out = res.ev_outcome[keep].astype(np.int64)
    acq = res.ev_acq[keep]
    n = len(rel)
    future = day >= HISTORY_DAYS
    b = lat.business[rel]
    # location: the customer's usual one (by relationship), sometimes another
    loc_first = locs.groupby("business_idx").cumcount().to_numpy()
    loc_start = np.searchsorted(locs["business_idx"].to_numpy(), np.arange(len(biz)))
    loc_n = np.bincount(locs["business_idx"].to_numpy(), minlength=len(biz))
    _ = loc_first
    usual = rel % loc_n[b]
    other = rng.integers(0, 1 << 30, size=n) % loc_n[b]
    loc = loc_start[b] + np.where(rng.random(n) < 0.9, usual, other)
    svc_start = np.searchsorted(svcs["business_idx"].to_numpy(), np.arange(len(biz)))
    svc_n = np.bincount(svcs["business_idx"].to_numpy(), minlength=len(biz))
    fav = (rel * 7919) % svc_n[b]
    svc = svc_start[b] + np.where(
        rng.random(n) < 0.6, fav, rng.integers(0, 1 << 30, size=n) % svc_n[b]
    )
    price = svcs["price_minor"].to_numpy()[svc]
    step = np.where(svcs["currency"].to_numpy()[svc] == "EUR", 10, 100)
    amount = (np.round(price * rng.uniform(0.9, 1.15, size=n) / step) * step).astype(np.int64)
    promo = np.where(acq, lat.promo_offer[rel], -1)
    discount = offers["discount_pct"].to_numpy() if len(offers) else np.zeros(1)
    has_promo = promo >= 0
    amount[has_promo] = amount[has_promo] * (100 - discount[promo[has_promo]]) // 100 // 10 * 10
    is_rest = (biz["kind"].to_numpy() == "restaurant")[b]
    start_min = np.where(is_rest, 12 * 60, 9 * 60) + 15 * rng.integers(0, 48, size=n) % np.where(
        is_rest, 10 * 60, 12 * 60
    )
    duration = svcs["duration_min"].to_numpy()[svc]
    created_min = np.where(
        lead == 0,
        start_min - rng.integers(5, 120, size=n),
        -lead * 1440 + rng.integers(8 * 60, 22 * 60, size=n) - (start_min * 0),
    )
    # created_min is relative to the start day's local midnight
    upd_min = np.select(
        [out == OUT_COMPLETED, out == 1],
        [
            start_min + duration + rng.integers(0, 60, size=n),
            created_min + (rng.random(n) * (start_min - created_min)).astype(np.int64),
        ],
        start_min + 30 + rng.integers(0, 120, size=n),
    )
    tz = rel_tz[rel]
    ed = day0_epoch + day
    start_s = local_to_utc(ed, start_min, tz, zones)
    created_s = local_to_utc(ed, created_min, tz, zones)
    upd_s = np.where(future, created_s, local_to_utc(ed, upd_min, tz, zones))
    status = np.where(future, 3, out)  # 0 completed 1 cancelled 2 no_show 3 scheduled
    amount_null = status != OUT_COMPLETED
    # an earlier `scheduled` version for ~30% of past booked appointments
    versioned = ~future & (lead >= 1) & (rng.random(n) < 0.3)
    return {
        "n": n,
        "rel": rel,
        "business": b,
        "loc": loc,
        "svc": svc,
        "status": status,
        "amount": amount,
        "amount_null": amount_null,
        "promo": promo,
        "start_s": start_s,
        "created_s": created_s,
        "updated_s": upd_s,
        "versioned": versioned,
        "day": day,
        "currency": biz["currency"].to_numpy()[b],
    }


_STATUS = ['"completed"', '"cancelled"', '"no_show"', '"scheduled"']
_CURRENCIES = ("RUB", "KZT", "EUR")


def _appointment_matrix(
    a: dict[str, Any], rows: np.ndarray, ts: _lines.Timestamps, biz_ids: np.ndarray, scheduled: bool
) -> np.ndarray:
    n = len(rows)
    lb = _lines.LineBuilder(n)
    letter = lambda ch, m: np.concatenate(  # noqa: E731
        [
            np.full((n, 1), QUOTE, np.uint8),
            np.full((n, 1), ord(ch), np.uint8),
            m,
            np.full((n, 1), QUOTE, np.uint8),
        ],
        axis=1,
    )
    QUOTE = _lines.QUOTE
    lb.raw("id", letter("A", _lines.digits(rows + 1, 10)))
    lb.raw("business_id", letter("B", _lines.digits(a["business"][rows] + 1, 5)))
    lb.raw("client_id", letter("C", _lines.digits(a["rel"][rows] + 1, 9)))
    lb.raw("location_id", letter("L", _lines.digits(a["loc"][rows] + 1, 6)))
    lb.raw("service_id", letter("S", _lines.digits(a["svc"][rows] + 1, 7)))
    status = np.full(n, 3) if scheduled else a["status"][rows]
    lb.category("status", status, _STATUS)
    q = np.full((n, 1), QUOTE, np.uint8)
    lb.raw("start_at", np.concatenate([q, ts.render(a["start_s"][rows]), q], 1))
    null = np.ones(n, bool) if scheduled else a["amount_null"][rows]
    lb.raw("amount", _lines.decimal_tokens(np.where(null, 0, a["amount"][rows]), null))
    cur = np.searchsorted(np.array(sorted(_CURRENCIES)), a["currency"][rows])
    lb.category("currency", cur, [f'"{c}"' for c in sorted(_CURRENCIES)])
    promo = a["promo"][rows]
    pm = letter("O", _lines.digits(np.maximum(promo, 0) + 1, 4))
    pm[promo < 0] = _lines.SPACE
    pm[promo < 0, -4:] = np.frombuffer(b"null", np.uint8)
    lb.raw("promo_offer_id", pm)
    lb.raw("created_at", np.concatenate([q, ts.render(a["created_s"][rows]), q], 1))
    upd = a["created_s"][rows] if scheduled else a["updated_s"][rows]
    lb.raw("updated_at", np.concatenate([q, ts.render(upd), q], 1))
    _ = biz_ids
    return lb.build()


def _write_appointments_api(
    path: Path, a: dict[str, Any], ts: _lines.Timestamps, is_export: np.ndarray, biz_ids: np.ndarray
) -> dict[str, int]:
    """One line per version, in `updated_at` order (a change log, as the API serves it)."""
    api = ~is_export[a["business"]]
    final_rows = np.flatnonzero(api)
    sched_rows = np.flatnonzero(api & a["versioned"])
    # (updated_at, kind) order: each scheduled version precedes its final version
    keys = np.concatenate([a["created_s"][sched_rows], a["updated_s"][final_rows]])
    rows = np.concatenate([sched_rows, final_rows])
    is_sched = np.concatenate([np.ones(len(sched_rows), bool), np.zeros(len(final_rows), bool)])
    order = np.lexsort((~is_sched, rows, keys))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        for lo in range(0, len(order), _CHUNK):
            sel = order[lo : lo + _CHUNK]
            sch = is_sched[sel]
            r = rows[sel]
            # rows are rendered in two groups then interleaved back into order
            m_s = _appointment_matrix(a, r[sch], ts, biz_ids, True)
            m_f = _appointment_matrix(a, r[~sch], ts, biz_ids, False)
            width = max(m_s.shape[1] if len(m_s) else 0, m_f.shape[1] if len(m_f) else 0)
            out = np.full((len(sel), width), _lines.SPACE, np.uint8)
            for m, mask in ((m_s, sch), (m_f, ~sch)):
                if len(m):
                    out[mask, : m.shape[1] - 2] = m[:, :-2]
                    out[mask, -2:] = m[:, -2:]
            _lines.write_matrix(fh, out)
    return {"lines": len(order), "records": len(final_rows)}


def _write_exports(
    out_dir: Path,
    man: _Manifest,
    export_set: Any,
    biz: pd.DataFrame,
    svcs: pd.DataFrame,
    a: dict[str, Any],
    ts: _lines.Timestamps,
    lat: Any,
    phones: pa.Array,
    names: pa.Array,
    bday_str: pa.Array,
    bknown: np.ndarray,
    gender_str: pa.Array,
    gknown: np.ndarray,
    created_str: pa.Array,
    cust_id_str: pa.Array,
) -> list[str]:
    """customers.xlsx, appointments_<YYYYMM>.csv (UTF-8 BOM, `,`), services.parquet."""
    from openpyxl import Workbook

    done = []
    for bi in list(export_set):
        bid = str(biz.at[bi, "id"])
        folder = out_dir / "crm" / "exports" / bid
        folder.mkdir(parents=True, exist_ok=True)
        done.append(bid)
        # services
        s = svcs[svcs["business_idx"] == bi]
        tab = pa.table(
            {
                "id": s["id"].tolist(),
                "business_id": s["business_id"].tolist(),
                "name": s["name"].tolist(),
                "category": s["category"].tolist(),
                "price": [money_str(x) for x in s["price_minor"]],
                "currency": s["currency"].tolist(),
                "duration_min": s["duration_min"].astype("int32").tolist(),
                "updated_at": [f"{ts.dates[0].tobytes().decode()}T09:00:00Z"] * len(s),
            }
        )
        pq.write_table(tab, folder / "services.parquet")
        man.add(folder / "services.parquet", len(s))
        # customers
        rows = np.flatnonzero(lat.business == bi)
        wb = Workbook(write_only=True)
        ws = wb.create_sheet("customers")
        header = [
            "id",
            "business_id",
            "phone",
            "name",
            "birthday",
            "gender",
            "marketing_consent",
            "created_at",
            "updated_at",
        ]
        ws.append(header)
        for i in rows.tolist():
            ws.append(
                [
                    cust_id_str[i].as_py(),
                    bid,
                    phones[i].as_py(),
                    names[i].as_py(),
                    bday_str[i].as_py() if bknown[i] else None,
                    gender_str[i].as_py() if gknown[i] else None,
                    bool(lat.consent[i]),
                    created_str[i].as_py(),
                    created_str[i].as_py(),
                ]
            )
        wb.save(folder / "customers.xlsx")
        _fix_xlsx_timestamp(folder / "customers.xlsx")
        man.add(folder / "customers.xlsx", len(rows))
        # appointments by start month (UTC)
        ar = np.flatnonzero(a["business"] == bi)
        month = (a["start_s"][ar] // 86_400).astype("datetime64[D]").astype("datetime64[M]")
        for mth in np.unique(month):
            sel = ar[month == mth]
            st = a["status"][sel]
            cols = {
                "id": bytes_to_arrow(
                    np.concatenate(
                        [np.full((len(sel), 1), ord("A"), np.uint8), _lines.digits(sel + 1, 10)], 1
                    )
                ),
                "business_id": pa.array([bid] * len(sel)),
                "client_id": cust_id_str.take(pa.array(a["rel"][sel])),
                "location_id": bytes_to_arrow(
                    np.concatenate(
                        [
                            np.full((len(sel), 1), ord("L"), np.uint8),
                            _lines.digits(a["loc"][sel] + 1, 6),
                        ],
                        1,
                    )
                ),
                "service_id": bytes_to_arrow(
                    np.concatenate(
                        [
                            np.full((len(sel), 1), ord("S"), np.uint8),
                            _lines.digits(a["svc"][sel] + 1, 7),
                        ],
                        1,
                    )
                ),
                "status": pa.array(
                    np.array(["completed", "cancelled", "no_show", "scheduled"])[st]
                ),
                "start_at": bytes_to_arrow(ts.render(a["start_s"][sel])),
                "amount": pa.array(
                    [
                        None if nl else money_str(x)
                        for x, nl in zip(
                            a["amount"][sel].tolist(), a["amount_null"][sel].tolist(), strict=True
                        )
                    ],
                    pa.string(),
                ),
                "currency": pa.array(a["currency"][sel].astype(str)),
                "promo_offer_id": pa.array(
                    [None if p < 0 else f"O{p + 1:04d}" for p in a["promo"][sel].tolist()],
                    pa.string(),
                ),
                "created_at": bytes_to_arrow(ts.render(a["created_s"][sel])),
                "updated_at": bytes_to_arrow(ts.render(a["updated_s"][sel])),
            }
            path = folder / f"appointments_{str(mth).replace('-', '')}.csv"
            with path.open("wb") as fh:
                fh.write("\ufeff".encode())
                pacsv.write_csv(
                    pa.table(cols),
                    fh,
                    pacsv.WriteOptions(quoting_style="needed"),
                )
            man.add(path, len(sel))
    return done


def _fix_xlsx_timestamp(path: Path) -> None:
    """openpyxl stamps the creation time into docProps/core.xml; pin it (and the zip
    entry times) so the same seed gives the same bytes."""
    import re
    import zipfile

    data = {}
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            data[info.filename] = z.read(info.filename)
    core = data.get("docProps/core.xml")
    if core is not None:
        data["docProps/core.xml"] = re.sub(
            rb"(<dcterms:(created|modified)[^>]*>)[^<]*", rb"\g<1>2026-01-01T00:00:00Z", core
        )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in data.items():
            zi = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, content)


# ------------------------------------------------------------------------------ truth


def _write_truth(
    out_dir: Path,
    man: _Manifest,
    res: Any,
    lat: Any,
    biz: pd.DataFrame,
    e164_np: np.ndarray,
    invalid: np.ndarray,
    phones: pa.Array,
    day0: date,
    conversions: pd.DataFrame,
    offers: pd.DataFrame,
    appt: dict[str, Any],
    msg_info: dict[str, Any],
    partner_info: dict[str, Any],
    is_export_rel: np.ndarray,
) -> dict[str, Any]:
    folder = out_dir / "truth"
    folder.mkdir(parents=True, exist_ok=True)
    t = res.truth
    rel = t["rel"].to_numpy()
    cutoff = np.array([day0 + timedelta(days=int(d)) for d in range(HISTORY_DAYS + 1)])[
        t["cutoff_day"].to_numpy()
    ]
    trig_names = np.array([*TRIGGERS, "holdout", None], dtype=object)
    pt = t["planned_trigger"].to_numpy()
    table = pa.table(
        {
            "business_id": pa.array(biz["id"].to_numpy()[lat.business[rel]], pa.string()),
            "phone": pa.array(e164_np[lat.person[rel]], pa.string()),
            "customer_record_id": pa.array([f"C{x + 1:09d}" for x in rel.tolist()], pa.string())
            if len(rel) < 200_000
            else bytes_to_arrow(
                np.concatenate(
                    [np.full((len(rel), 1), ord("C"), np.uint8), _lines.digits(rel + 1, 9)], 1
                )
            ),
            "as_of": pa.array(cutoff, pa.date32()),
            "probability": pa.array(t["probability"].to_numpy()),
            "probability_without_message": pa.array(t["probability_without_message"].to_numpy()),
            "outcome": pa.array(
                t["outcome"].astype(object).where(t["outcome"].notna(), None).tolist(), pa.bool_()
            ),
            "alive": pa.array(t["alive"].to_numpy()),
            "visit_rate_per_day": pa.array(t["visit_rate_per_day"].to_numpy()),
            "known_bookings": pa.array(t["known_bookings"].to_numpy()),
            "planned_trigger": pa.array(
                trig_names[np.where(pt == -2, 5, np.where(pt < 0, 6, pt))], pa.string()
            ),
            "phone_valid_in_source": pa.array(invalid[rel] < 0),
        }
    )
    pq.write_table(table, folder / "revisit_probability.parquet", compression="zstd")
    man.add(folder / "revisit_probability.parquet", table.num_rows)

    # message effect: hazard multipliers, and the mean uplift in the 30-day probability
    # over the truth windows whose planned message was delivered
    eff: dict[str, Any] = {
        "hazard_multiplier_days": EFFECT_DAYS,
        "holdout_share": HOLDOUT_SHARE,
        "window_days": 30,
        "triggers": {},
    }
    for i, name in enumerate(TRIGGERS):
        sel = pt == i
        d = t["probability"].to_numpy()[sel] - t["probability_without_message"].to_numpy()[sel]
        eff["triggers"][name] = {
            "hazard_multiplier": float(1.0 + UPLIFT[i]),
            "mean_uplift_30d_probability": round(float(d.mean()), 6) if sel.any() else None,
            "n_truth_windows": int(sel.sum()),
        }
    eff["triggers"]["partner_offer"]["publisher_conversion_probability"] = PARTNER_CONVERSION
    eff["note"] = (
        "hazard_multiplier applies to the distributor-business visit rate for "
        "hazard_multiplier_days from the send, only for delivered (non-holdout) messages; "
        "partner_offer converts delivered recipients into the publisher's clients with "
        "publisher_conversion_probability."
    )
    (folder / "message_effect.json").write_text(json.dumps(eff, indent=2) + "\n")
    man.add(folder / "message_effect.json", len(TRIGGERS))

    # bad rows the connectors must quarantine
    bad_rows = []
    inv = np.flatnonzero(invalid >= 0)
    cust_ids = [f"C{x + 1:09d}" for x in inv.tolist()]
    bid = biz["id"].to_numpy()
    for i, cid in zip(inv.tolist(), cust_ids, strict=True):
        bad_rows.append(
            {
                "source": "crm",
                "entity": "customers",
                "business_id": str(bid[lat.business[i]]),
                "record_id": cid,
                "field": "phone",
                "value": phones[i].as_py(),
                "reason": INVALID_KINDS[invalid[i]],
                "file": "crm/api/customers.jsonl"
                if not is_export_rel[i]
                else f"crm/exports/{bid[lat.business[i]]}/customers.xlsx",
                "locator": cid,
            }
        )
    bad_rows.extend(partner_info["bad_rows"])
    pd.DataFrame(
        bad_rows,
        columns=[
            "source",
            "entity",
            "business_id",
            "record_id",
            "field",
            "value",
            "reason",
            "file",
            "locator",
        ],
    ).to_csv(folder / "bad_rows.csv", index=False)
    man.add(folder / "bad_rows.csv", len(bad_rows))

    conv = conversions.copy()
    if len(conv):
        conv_rel_start = len(lat) - len(conv)
        conv["customer_record_id"] = [f"C{x + 1:09d}" for x in range(conv_rel_start, len(lat))]
        conv["offer_id"] = [f"O{x + 1:04d}" for x in conv["offer"]]
        conv["publisher_business_id"] = bid[conv["publisher"].to_numpy()]
        conv["distributor_business_id"] = bid[lat.business[conv["rel"].to_numpy()]]
        conv["phone"] = e164_np[conv["person"].to_numpy()]
        conv["visit_date"] = [(day0 + timedelta(days=int(d))).isoformat() for d in conv["day"]]
        conv = conv[
            [
                "offer_id",
                "publisher_business_id",
                "distributor_business_id",
                "phone",
                "customer_record_id",
                "visit_date",
            ]
        ]
    else:
        conv = pd.DataFrame(
            columns=[
                "offer_id",
                "publisher_business_id",
                "distributor_business_id",
                "phone",
                "customer_record_id",
                "visit_date",
            ]
        )
    conv.to_csv(folder / "partner_conversions.csv", index=False)
    man.add(folder / "partner_conversions.csv", len(conv))
    pd.DataFrame(partner_info["balances"]).to_csv(folder / "cashback_balances.csv", index=False)
    man.add(folder / "cashback_balances.csv", len(partner_info["balances"]))

    hist = t[t["outcome"].notna()]
    return {
        "cutoffs": sorted({c.isoformat() for c in set(cutoff.tolist())}),
        "window_days": 30,
        "window_calendar": "local dates of the business's timezone, [as_of, as_of + 30 days)",
        "rows": len(t),
        "mean_probability_with_outcome": round(float(hist["probability"].mean()), 6),
        "outcome_rate": round(float(hist["outcome"].astype(float).mean()), 6),
        "invalid_phone_rows": len(inv),
        "bad_rows": len(bad_rows),
        "holdout_sends": int(msg_info["holdout"]),
        "files": [
            "revisit_probability.parquet",
            "message_effect.json",
            "bad_rows.csv",
            "partner_conversions.csv",
            "cashback_balances.csv",
        ],
        "completed_appointments": int((appt["status"] == OUT_COMPLETED).sum()),
        "partner_sends": int((res.sends.trigger == T_PARTNER).sum()),
    }
