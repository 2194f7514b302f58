"""Appointment records: the simulated slots made into what a CRM stores (location,
service, amount, local times, versions), and `crm/api/appointments.jsonl`.

There are ~20 appointments per customer (20M at the bench scale), so records are drawn
in fixed slices of columns (bounded memory, the same draws at any size) and the API
file is written with the fixed-width byte matrices of `_lines`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simulation.ecosystem import _lines
from simulation.ecosystem.common import local_to_utc
from simulation.ecosystem.history import History
from simulation.ecosystem.model import HISTORY_DAYS, OUT_COMPLETED

if TYPE_CHECKING:
    from simulation.ecosystem.crm import CrmView

CURRENCIES = ("RUB", "KZT", "EUR")  # `currency_code` indexes it
STATUSES = ("completed", "cancelled", "no_show", "scheduled")  # `status` indexes it
_SCHEDULED = 3
_SLICE = 2_000_000  # events turned into appointment records at a time
_CHUNK = 250_000  # rows rendered at a time (~80 MB of appointment lines)
_API_FIELDS = (
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


def draw_appointments(h: History, view: CrmView, rng: np.random.Generator) -> dict[str, Any]:
    """Appointment records (latest state) in simulation order, as columns (`n`: how
    many), plus which get an earlier `scheduled` version. Future slots are kept only if
    booked before as_of. Record i has the id `A<i + 1>`."""
    res = h.res
    keep = np.flatnonzero(
        (res.ev_day < HISTORY_DAYS) | (res.ev_day.astype(np.int64) - res.ev_lead < HISTORY_DAYS)
    )
    out: dict[str, Any] = {}
    for lo in range(0, len(keep), _SLICE):
        part = _appointment_slice(h, view, keep[lo : lo + _SLICE], rng)
        for k, v in part.items():
            # filled in place: no second copy of every column at the end
            out.setdefault(k, np.empty(len(keep), dtype=v.dtype))[lo : lo + len(v)] = v
    out["n"] = len(keep)
    return out


def _appointment_slice(
    h: History, view: CrmView, events: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The records of the simulated slots `events` (indices into h.res's events)."""
    res, biz = h.res, h.biz
    rel = res.ev_rel[events]
    day, lead = res.ev_day[events].astype(np.int64), res.ev_lead[events].astype(np.int64)
    out = res.ev_outcome[events].astype(np.int64)
    b = h.lat.business[rel]
    loc, svc, amount, promo = _place_and_price(h, rel, b, res.ev_acq[events], rng)
    start_min, created_min, upd_min = _local_minutes(h, rel, b, svc, lead, out, rng)
    future = day >= HISTORY_DAYS
    tz = view.rel_tz[rel]
    ed = h.day0_epoch + day
    start_s = local_to_utc(ed, start_min, tz, view.zones)
    created_s = local_to_utc(ed, created_min, tz, view.zones)
    upd_s = np.where(future, created_s, local_to_utc(ed, upd_min, tz, view.zones))
    status = np.where(future, _SCHEDULED, out)
    # an earlier `scheduled` version for ~30% of past booked appointments
    versioned = ~future & (lead >= 1) & (rng.random(len(rel)) < 0.3)
    currency_code = biz["currency"].map(CURRENCIES.index).to_numpy().astype(np.int8)
    # compact dtypes: at the bench scale these columns hold ~20M rows each
    return {
        "rel": rel.astype(np.int32),
        "business": b.astype(np.int32),
        "loc": loc.astype(np.int32),
        "svc": svc.astype(np.int32),
        "status": status.astype(np.int8),
        "amount": amount,
        "amount_null": status != OUT_COMPLETED,
        "promo": promo.astype(np.int32),
        "start_s": start_s,
        "created_s": created_s,
        "updated_s": upd_s,
        "versioned": versioned,
        "currency_code": currency_code[b],
    }


def _place_and_price(
    h: History, rel: np.ndarray, b: np.ndarray, acq: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(location, service, amount in minor units, promo offer or -1) per appointment:
    mostly the customer's usual location and favourite service, prices varying around
    the list price, the offer's discount on a partner conversion's first visit."""
    locs, svcs, offers = h.locs, h.svcs, h.offers
    n, n_bus = len(rel), len(h.biz)
    loc_start = np.searchsorted(locs["business_idx"].to_numpy(), np.arange(n_bus))
    loc_n = np.bincount(locs["business_idx"].to_numpy(), minlength=n_bus)
    usual = rel % loc_n[b]
    other = rng.integers(0, 1 << 30, size=n) % loc_n[b]
    loc = loc_start[b] + np.where(rng.random(n) < 0.9, usual, other)
    svc_start = np.searchsorted(svcs["business_idx"].to_numpy(), np.arange(n_bus))
    svc_n = np.bincount(svcs["business_idx"].to_numpy(), minlength=n_bus)
    fav = (rel * 7919) % svc_n[b]
    svc = svc_start[b] + np.where(
        rng.random(n) < 0.6, fav, rng.integers(0, 1 << 30, size=n) % svc_n[b]
    )
    price = svcs["price_minor"].to_numpy()[svc]
    step = np.where(svcs["currency"].to_numpy() == "EUR", 10, 100)[svc]
    amount = (np.round(price * rng.uniform(0.9, 1.15, size=n) / step) * step).astype(np.int64)
    promo = np.where(acq, h.lat.promo_offer[rel], -1)
    discount = offers["discount_pct"].to_numpy() if len(offers) else np.zeros(1)
    has_promo = promo >= 0
    amount[has_promo] = amount[has_promo] * (100 - discount[promo[has_promo]]) // 100 // 10 * 10
    return loc, svc, amount, promo


def _local_minutes(
    h: History,
    rel: np.ndarray,
    b: np.ndarray,
    svc: np.ndarray,
    lead: np.ndarray,
    outcome: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, created, updated) as minutes from the local midnight of the appointment's
    day (negative: days before). Restaurants open 12:00–22:00, others 9:00–21:00; a
    walk-in is booked minutes before, a booking `lead` days before; completed records are
    updated after the visit, cancelled ones between booking and start."""
    n = len(rel)
    is_rest = (h.biz["kind"].to_numpy() == "restaurant")[b]
    start_min = np.where(is_rest, 12 * 60, 9 * 60) + 15 * rng.integers(0, 48, size=n) % np.where(
        is_rest, 10 * 60, 12 * 60
    )
    duration = h.svcs["duration_min"].to_numpy()[svc]
    created_min = np.where(
        lead == 0,
        start_min - rng.integers(5, 120, size=n),
        -lead * 1440 + rng.integers(8 * 60, 22 * 60, size=n),
    )
    upd_min = np.select(
        [outcome == OUT_COMPLETED, outcome == 1],
        [
            start_min + duration + rng.integers(0, 60, size=n),
            # strictly after the booking: a versioned record's update is later than it
            created_min + 1 + (rng.random(n) * (start_min - created_min - 1)).astype(np.int64),
        ],
        start_min + 30 + rng.integers(0, 120, size=n),
    )
    return start_min, created_min, upd_min


# -------------------------------------------------------------------------- API file


def write_appointments_api(
    path: Path,
    a: dict[str, Any],
    ts: _lines.Timestamps,
    is_export: np.ndarray,
    n_rels: int,
    n_offers: int,
) -> dict[str, int]:
    """One line per version, in `updated_at` order (a change log, as the API serves it);
    appointments of file-drop businesses are left out.

    Every line has the same width, so it is assembled in a preallocated byte matrix:
    ids of businesses, locations, services, customers and offers, amounts, statuses and
    currencies are gathered from token tables rendered once; only appointment ids and
    timestamps are rendered per row."""
    rows, is_final, n_records = _versions_in_update_order(a, ~is_export[a["business"]])
    tables, amount_code = _token_tables(a, n_rels, n_offers)
    null_amount = len(tables["amount"]) - 1
    widths = {
        "id": 13,
        "start_at": 22,
        "created_at": 22,
        "updated_at": 22,
        **{k: t.shape[1] for k, t in tables.items()},
    }
    layout = _lines.Layout([(f, widths[f]) for f in _API_FIELDS])
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
            layout.take(out, "status", tables, np.where(fin, a["status"][r], _SCHEDULED))
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
    return {"lines": len(rows), "records": n_records}


def _versions_in_update_order(
    a: dict[str, Any], listed: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """(record row, is the final version) of every version of the `listed` records in
    (updated_at, id, final after scheduled) order, and the number of records. Each
    scheduled version precedes its final version.

    The three keys are packed into one int64 that also holds the row and the kind, so an
    in-place sort of it is the whole ordering (no argsort, no copies)."""
    final_rows = np.flatnonzero(listed)
    sched_rows = np.flatnonzero(listed & a["versioned"])
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
    return rows, is_final, len(final_rows)


def _token_tables(
    a: dict[str, Any], n_rels: int, n_offers: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The JSON tokens of the fields that take few values, per field, and each record's
    row of the amount table (its last row is `null`)."""
    tables = {
        "business_id": _lines.id_tokens(
            "B", np.arange(1, int(a["business"].max(initial=0)) + 2), 5
        ),
        "client_id": _lines.id_tokens("C", np.arange(1, n_rels + 1), 9),
        "location_id": _lines.id_tokens("L", np.arange(1, int(a["loc"].max(initial=0)) + 2), 6),
        "service_id": _lines.id_tokens("S", np.arange(1, int(a["svc"].max(initial=0)) + 2), 7),
        "status": _lines.token_table([f'"{s}"' for s in STATUSES]),
        "currency": _lines.token_table([f'"{c}"' for c in CURRENCIES]),
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
    return tables, amount_code
