"""`generate()`: the whole synthetic ecosystem in the native forms of ingestion/SOURCES.md."""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from revisit.settings import Settings
from simulation.ecosystem import _lines, messaging, partners
from simulation.ecosystem.common import (
    arrow_json_lines,
    bytes_to_arrow,
    local_to_utc,
    money_str,
    write_arrow_lines,
    write_json_lines,
)
from simulation.ecosystem.model import (
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
from simulation.ecosystem.world import (
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

SCALES: dict[str, int] = {"test": 1_000, "demo": 20_000, "bench": 1_000_000}
DEFAULT_AS_OF = date(2026, 11, 1)
CUSTOMERS_PER_BUSINESS = 400
GENERATOR_VERSION = 2
_EPOCH = date(1970, 1, 1)
_CHUNK = 250_000  # rows rendered at a time (~80 MB of appointment lines)
_APPT_SLICE = 2_000_000  # events turned into appointment records at a time


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
    processes: int = 2,
) -> dict[str, Any]:
    """Write a synthetic ecosystem of `customers` people into `out_dir` (replaced if it
    exists) and return the manifest (also written to `out_dir/manifest.json`).

    Same arguments → byte-identical files. `as_of` (default 2026-11-01) is the local date
    the history ends: 540 days of history before it, future scheduled appointments up to
    30 days after it. `export_businesses` businesses (default ~5%, at most 20: the
    smallest, never a country's only one) deliver CRM file drops instead of the API.
    Webhook requests cover the sends of the last `webhook_days` days. See
    ingestion/SOURCES.md for every file. With `processes` ≥ 2 the CRM files and the other
    files are written by two processes (forked; the bytes do not depend on it).
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
    # the smallest businesses export files; a country's only business stays on the API so
    # the API covers every country (and Berlin, the one DST zone) even at the test scale
    country_n = biz.groupby("country")["idx"].transform("size").to_numpy()
    by_size = np.lexsort((np.arange(n_bus), counts, country_n == 1))
    export_set = np.sort(by_size[:n_export]) if n_export else []
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
    rel_export = is_export[lat.business]
    e164_np = phone_e164.to_numpy(zero_copy_only=False)

    def crm_files(man: _Manifest) -> tuple[list[str], int]:
        """CRM API customers and appointments, CRM file drops (returns the export ids
        and the number of appointments)."""
        start_minute = rng_out.integers(9 * 60, 21 * 60, size=r)
        created_s = local_to_utc(day0_epoch + lat.start_day, start_minute - 30, rel_tz, zones)
        # ~5% profiles completed later: first version without birthday, a later full version
        updated_later = bknown & (rng_out.random(r) < 0.05) & (invalid < 0)
        upd_s = created_s + (
            rng_out.random(r) * (day0_epoch * 86_400 + HISTORY_DAYS * 86_400 - created_s)
        ).astype(np.int64)
        appt = _appointments(res, lat, biz, locs, svcs, offers, rng_out, day0_epoch, rel_tz, zones)
        cust_id_str = bytes_to_arrow(
            np.concatenate(
                [np.full((r, 1), ord("C"), np.uint8), _lines.digits(rel_cust_id + 1, 9)], 1
            )
        )
        biz_id_arr = np.array(biz["id"].tolist(), dtype=object)
        rel_biz_id = pa.array(biz_id_arr[lat.business], pa.string())
        created_str = bytes_to_arrow(ts.render(created_s))
        consent_tok = pa.array(np.where(lat.consent, "true", "false"), pa.string())

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

        v1 = customer_lines(bknown & ~updated_later, created_str)
        v2 = customer_lines(bknown, bytes_to_arrow(ts.render(upd_s)))
        api_rows = np.flatnonzero(~rel_export)
        upd_rows = np.flatnonzero(~rel_export & updated_later)
        n_cust = write_arrow_lines(api / "customers.jsonl", v1.take(pa.array(api_rows)))
        n_cust += write_arrow_lines(api / "customers.jsonl", v2.take(pa.array(upd_rows)), mode="ab")
        man.add(api / "customers.jsonl", n_cust)

        # appointments
        n_appt_api = _write_appointments_api(
            api / "appointments.jsonl", appt, ts, is_export, r, len(offers)
        )
        man.add(api / "appointments.jsonl", n_appt_api["lines"], records=n_appt_api["records"])

        # CRM file drops
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
        return exports, int(appt["n"])

    def other_files(man: _Manifest) -> tuple[dict[str, Any], ...]:
        """Sends, webhooks, partner offers and feeds, ground truth."""
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
            msg_info,
            partner_info,
            rel_export,
        )
        return msg_info, partner_info, truth_info

    # the files left are independent of each other and use separate random streams
    (exports, n_appointments), (msg_info, partner_info, truth_info) = _run_pair(
        crm_files, other_files, man, processes
    )

    manifest: dict[str, Any] = {
        "generator": "simulation.ecosystem",
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
            "appointments": n_appointments,
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


def _run_pair(
    first: Callable[[_Manifest], Any],
    second: Callable[[_Manifest], Any],
    man: _Manifest,
    processes: int,
) -> tuple[Any, Any]:
    """`first(man)` here and `second(man)` in a forked child process (in turn when
    `processes` < 2 or fork is unavailable). Both only write files and return small
    results, and draw no shared random numbers, so the output is the same either way."""
    if processes < 2 or "fork" not in mp.get_all_start_methods():
        return first(man), second(man)
    ctx = mp.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_main, args=(second, man.root, send), daemon=True)
    child.start()
    send.close()
    try:
        result = first(man)
    except BaseException:
        child.kill()
        child.join()
        raise
    try:
        ok, payload, files = receive.recv()
    except EOFError:
        ok, payload, files = False, f"exit code {child.exitcode}", {}
    child.join()
    if not ok:
        raise RuntimeError(f"generator child process failed:\n{payload}")
    man.files.update(files)
    return result, payload


def _child_main(fn: Callable[[_Manifest], Any], root: Path, send: Connection) -> None:
    man = _Manifest(root)
    try:
        send.send((True, fn(man), man.files))
    except BaseException:
        send.send((False, traceback.format_exc(), {}))
    finally:
        send.close()


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
    `scheduled` version. Future slots are kept only if booked before as_of. Made in
    slices of a fixed number of events (bounded memory; the same draws at any size)."""
    keep = np.flatnonzero(
        (res.ev_day < HISTORY_DAYS) | (res.ev_day.astype(np.int64) - res.ev_lead < HISTORY_DAYS)
    )
    out: dict[str, Any] = {}
    for lo in range(0, len(keep), _APPT_SLICE):
        part = _appointment_slice(
            res,
            keep[lo : lo + _APPT_SLICE],
            lat,
            biz,
            locs,
            svcs,
            offers,
            rng,
            day0_epoch,
            rel_tz,
            zones,
        )
        for k, v in part.items():
            # filled in place: no second copy of every column at the end
            out.setdefault(k, np.empty(len(keep), dtype=v.dtype))[lo : lo + len(v)] = v
    out["n"] = len(keep)
    return out


def _appointment_slice(
    res: Any,
    events: np.ndarray,
    lat: Any,
    biz: pd.DataFrame,
    locs: pd.DataFrame,
    svcs: pd.DataFrame,
    offers: pd.DataFrame,
    rng: np.random.Generator,
    day0_epoch: int,
    rel_tz: np.ndarray,
    zones: list[str],
) -> dict[str, np.ndarray]:
    rel = res.ev_rel[events]
    day, lead = res.ev_day[events].astype(np.int64), res.ev_lead[events].astype(np.int64)
    out = res.ev_outcome[events].astype(np.int64)
    acq = res.ev_acq[events]
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
    step = np.where(svcs["currency"].to_numpy() == "EUR", 10, 100)[svc]
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
            # strictly after the booking: a versioned record's update is later than it
            created_min + 1 + (rng.random(n) * (start_min - created_min - 1)).astype(np.int64),
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
    # compact dtypes: at the bench scale these columns hold ~20M rows each
    return {
        "rel": rel.astype(np.int32),
        "business": b.astype(np.int32),
        "loc": loc.astype(np.int32),
        "svc": svc.astype(np.int32),
        "status": status.astype(np.int8),
        "amount": amount,
        "amount_null": amount_null,
        "promo": promo.astype(np.int32),
        "start_s": start_s,
        "created_s": created_s,
        "updated_s": upd_s,
        "versioned": versioned,
        "currency_code": biz["currency"].map(_CURRENCIES.index).to_numpy().astype(np.int8)[b],
    }


_STATUS = ('"completed"', '"cancelled"', '"no_show"', '"scheduled"')
_CURRENCIES = ("RUB", "KZT", "EUR")
_APPOINTMENT_FIELDS = (
    "id",
    "business_id",
    "client_id",
    "location_id",
    "service_id",
    "status",
    "start_at",
    "amount",
    "currency",
    "promo_offer_id",
    "created_at",
    "updated_at",
)


def _write_appointments_api(
    path: Path,
    a: dict[str, Any],
    ts: _lines.Timestamps,
    is_export: np.ndarray,
    n_rels: int,
    n_offers: int,
) -> dict[str, int]:
    """One line per version, in `updated_at` order (a change log, as the API serves it).

    Every line has the same width, so it is assembled in a preallocated byte matrix:
    ids of businesses, locations, services, customers and offers, amounts, statuses and
    currencies are gathered from token tables rendered once; only appointment ids and
    timestamps are rendered per row."""
    api = ~is_export[a["business"]]
    final_rows = np.flatnonzero(api)
    sched_rows = np.flatnonzero(api & a["versioned"])
    # (updated_at, id, final after scheduled) order: each scheduled version precedes its
    # final version. The three keys are packed into one int64 that also holds the row and
    # the kind, so an in-place sort of it is the whole ordering (no argsort, no copies).
    row_bits = max(1, int(a["n"]).bit_length())
    k0 = min(a["created_s"].min(initial=0), a["updated_s"].min(initial=0))
    k1 = max(a["created_s"].max(initial=0), a["updated_s"].max(initial=0))
    if int(k1 - k0).bit_length() + row_bits + 1 > 63:
        raise ValueError("appointment timestamps span too long for the packed sort key")
    n_s = len(sched_rows)
    key = np.empty(n_s + len(final_rows), dtype=np.int64)
    key[:n_s] = ((a["created_s"][sched_rows] - k0) << row_bits | sched_rows) << 1
    key[n_s:] = (((a["updated_s"][final_rows] - k0) << row_bits | final_rows) << 1) | 1
    key.sort()
    is_final = (key & 1).astype(bool)
    rows = (key >> 1) & ((1 << row_bits) - 1)
    del key
    tables = {
        "business_id": _lines.id_tokens(
            "B", np.arange(1, int(a["business"].max(initial=0)) + 2), 5
        ),
        "client_id": _lines.id_tokens("C", np.arange(1, n_rels + 1), 9),
        "location_id": _lines.id_tokens("L", np.arange(1, int(a["loc"].max(initial=0)) + 2), 6),
        "service_id": _lines.id_tokens("S", np.arange(1, int(a["svc"].max(initial=0)) + 2), 7),
        "status": _lines.token_table(_STATUS),
        "currency": _lines.token_table([f'"{c}"' for c in _CURRENCIES]),
        # offers 0..n-1, then null
        "promo_offer_id": _lines.token_table(
            [f'"O{i + 1:04d}"' for i in range(n_offers)] + ["null"], align="right"
        ),
    }
    amounts, amount_code = np.unique(a["amount"], return_inverse=True)
    null_amount = len(amounts)
    tables["amount"] = _lines.decimal_tokens(
        np.append(amounts, 0), np.arange(null_amount + 1) == null_amount
    )
    widths = {
        "id": 13,
        "start_at": 22,
        "created_at": 22,
        "updated_at": 22,
        **{k: t.shape[1] for k, t in tables.items()},
    }
    layout = _lines.Layout([(f, widths[f]) for f in _APPOINTMENT_FIELDS])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        for lo in range(0, len(rows), _CHUNK):
            r = rows[lo : lo + _CHUNK]
            fin = is_final[lo : lo + _CHUNK]
            out = layout.new(len(r))
            layout.put(out, "id", _lines.id_tokens("A", r + 1, 10))
            layout.take(out, "business_id", tables, a["business"][r])
            layout.take(out, "client_id", tables, a["rel"][r])
            layout.take(out, "location_id", tables, a["loc"][r])
            layout.take(out, "service_id", tables, a["svc"][r])
            layout.take(out, "status", tables, np.where(fin, a["status"][r], 3))
            layout.put(out, "start_at", ts.render(a["start_s"][r], quoted=True))
            paid = fin & ~a["amount_null"][r]
            layout.take(out, "amount", tables, np.where(paid, amount_code[r], null_amount))
            layout.take(out, "currency", tables, a["currency_code"][r])
            promo = a["promo"][r]
            layout.take(out, "promo_offer_id", tables, np.where(promo < 0, n_offers, promo))
            layout.put(out, "created_at", ts.render(a["created_s"][r], quoted=True))
            upd = np.where(fin, a["updated_s"][r], a["created_s"][r])
            layout.put(out, "updated_at", ts.render(upd, quoted=True))
            _lines.write_matrix(fh, out)
    return {"lines": len(rows), "records": len(final_rows)}


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
                "currency": pa.array(np.array(_CURRENCIES)[a["currency_code"][sel]]),
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
    msg_info: dict[str, Any],
    partner_info: dict[str, Any],
    is_export_rel: np.ndarray,
) -> dict[str, Any]:
    folder = out_dir / "truth"
    folder.mkdir(parents=True, exist_ok=True)
    t = res.truth
    rel = t["rel"].to_numpy()
    # columns built with Arrow takes from small per-business/per-person arrays (the table
    # has ~10M rows at the bench scale: no Python objects per row)
    day0_epoch = (day0 - _EPOCH).days
    cutoff_day = t["cutoff_day"].to_numpy()
    trig_names = pa.array([*TRIGGERS, "holdout", None], pa.string())
    pt = t["planned_trigger"].to_numpy()
    table = pa.table(
        {
            "business_id": pa.array(biz["id"].to_numpy(), pa.string()).take(
                pa.array(lat.business[rel])
            ),
            "phone": pa.array(e164_np, pa.string()).take(pa.array(lat.person[rel])),
            "customer_record_id": bytes_to_arrow(
                np.concatenate(
                    [np.full((len(rel), 1), ord("C"), np.uint8), _lines.digits(rel + 1, 9)], 1
                )
            ),
            "as_of": pa.array(day0_epoch + cutoff_day, pa.int32()).cast(pa.date32()),
            "probability": pa.array(t["probability"].to_numpy()),
            "probability_without_message": pa.array(t["probability_without_message"].to_numpy()),
            "outcome": pa.array(t["outcome"].array, pa.bool_()),
            "alive": pa.array(t["alive"].to_numpy()),
            "visit_rate_per_day": pa.array(t["visit_rate_per_day"].to_numpy()),
            "known_bookings": pa.array(t["known_bookings"].to_numpy()),
            "planned_trigger": trig_names.take(
                pa.array(np.where(pt == -2, 5, np.where(pt < 0, 6, pt)))
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
        "cutoffs": [(day0 + timedelta(days=int(d))).isoformat() for d in np.unique(cutoff_day)],
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
        # past completed slots (future ones are only scheduled)
        "completed_appointments": int(
            ((res.ev_outcome == OUT_COMPLETED) & (res.ev_day < HISTORY_DAYS)).sum()
        ),
        "partner_sends": int((res.sends.trigger == T_PARTNER).sum()),
    }
