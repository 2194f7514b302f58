"""The CRM's records: its view of the people (phone spellings, names, birthdays), the
API files under `crm/api/`, and which businesses deliver file drops instead.

`crm_view` is drawn in the parent process, before the writers split into two
processes: the sends, webhooks and truth written by the other process need the same
names, phone spellings and export businesses. `write_crm_records` is the CRM half of
the writing (customers, appointments and the file drops of `crm_exports`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from simulation.ecosystem import _lines, appointments, crm_exports
from simulation.ecosystem.common import (
    Manifest,
    arrow_json_lines,
    bytes_to_arrow,
    local_to_utc,
    money_str,
    write_arrow_lines,
    write_json_lines,
)
from simulation.ecosystem.history import History
from simulation.ecosystem.model import FUTURE_DAYS, HISTORY_DAYS
from simulation.ecosystem.world import CITIES, FIRST, LAST, NAME_POOL, spell_phones

_CULTURES = ("ru", "kz", "de", "ru_lat")  # the order of world.make_persons' culture codes


@dataclass
class CrmView:
    """Per relationship (customer record), what the CRM holds about the person; and the
    time zones and timestamp renderer shared by every writer."""

    zones: list[str]  # every business time zone, sorted; `rel_tz` codes index it
    rel_tz: np.ndarray  # the time zone code of the relationship's business
    phones: pa.Array  # as staff typed them
    invalid: np.ndarray  # -1 a valid spelling, else an index into world.INVALID_KINDS
    names: pa.Array
    birthday: pa.Array  # YYYY-MM-DD, also where the CRM does not know it
    birthday_known: np.ndarray
    gender: pa.Array  # "f" / "m", also where the CRM does not know it
    gender_known: np.ndarray
    export_set: np.ndarray  # sorted indices of the businesses that deliver file drops
    is_export: np.ndarray  # per business
    rel_export: np.ndarray  # per relationship: its business delivers file drops
    timestamps: _lines.Timestamps  # renders every generated UTC timestamp


def crm_view(
    h: History,
    rng: np.random.Generator,
    invalid_phone_share: float,
    export_businesses: int | None,
) -> CrmView:
    """The CRM's view; draws the phone spellings (the first draws of `rng`)."""
    lat, persons = h.lat, h.persons
    pidx = lat.person
    phones, invalid = spell_phones(
        rng,
        persons["country"].to_numpy()[pidx],
        persons["national"].to_numpy()[pidx],
        invalid_phone_share,
    )
    zones = sorted({c.timezone for c in CITIES})
    tz_of_biz = h.biz["timezone"].map({z: i for i, z in enumerate(zones)}).to_numpy()
    export_set = _export_businesses(h, export_businesses)
    is_export = np.zeros(len(h.biz), dtype=bool)
    is_export[export_set] = True
    as_of = h.day0 + timedelta(days=HISTORY_DAYS)
    first = h.day0 - timedelta(days=800)
    bday_ts = _lines.Timestamps(as_of - timedelta(days=72 * 366), as_of)
    gender = persons["gender"].to_numpy()[pidx]
    return CrmView(
        zones=zones,
        rel_tz=tz_of_biz[lat.business],
        phones=phones,
        invalid=invalid,
        names=_names(h),
        birthday=bytes_to_arrow(bday_ts.render_date(persons["birthday"].to_numpy()[pidx])),
        birthday_known=persons["birthday_known"].to_numpy()[pidx],
        gender=pa.array(np.where(gender == 0, "f", "m"), pa.string()),
        gender_known=persons["gender_known"].to_numpy()[pidx],
        export_set=export_set,
        is_export=is_export,
        rel_export=is_export[lat.business],
        timestamps=_lines.Timestamps(first, as_of + timedelta(days=FUTURE_DAYS + 30)),
    )


def _export_businesses(h: History, n_export: int | None) -> np.ndarray:
    """The businesses that deliver file drops (default ~5%, at most 20): the smallest; a
    country's only business stays on the API, so the API covers every country (and
    Berlin, the one DST zone) even at the test scale."""
    n_bus = len(h.biz)
    if n_export is None:
        n_export = min(20, max(1, round(0.05 * n_bus)))
    counts = np.bincount(h.lat.business, minlength=n_bus)
    country_n = h.biz.groupby("country")["idx"].transform("size").to_numpy()
    by_size = np.lexsort((np.arange(n_bus), counts, country_n == 1))
    return np.sort(by_size[:n_export])


def _names(h: History) -> pa.Array:
    """The name ("First Last") of each relationship's person, drawn from the name pools
    of the person's culture and gender."""
    persons, pidx = h.persons, h.lat.person
    culture = persons["culture"].to_numpy()[pidx]
    gender = persons["gender"].to_numpy()[pidx]
    first_tab, last_tab = (
        np.array(
            [[(pool[(cu, g)].split() * 2)[:NAME_POOL] for g in ("f", "m")] for cu in _CULTURES],
            dtype=object,
        )
        for pool in (FIRST, LAST)
    )
    fi = persons["first_idx"].to_numpy()[pidx]
    li = persons["last_idx"].to_numpy()[pidx]
    return pa.array(
        first_tab[culture, gender, fi] + " " + last_tab[culture, gender, li], pa.string()
    )


# --------------------------------------------------------------------- reference data


def write_reference_records(out_dir: Path, man: Manifest, h: History, view: CrmView) -> None:
    """crm/api/businesses.jsonl, locations.jsonl and services.jsonl (small: one
    json.dumps per row). Services of file-drop businesses are in their drops instead."""
    api = out_dir / "crm" / "api"
    updated = f"{(h.day0 - timedelta(days=800)).isoformat()}T09:00:00Z"
    businesses = (
        {
            "id": b.id,
            "name": b.name,
            "kind": b.kind,
            "country": b.country,
            "city": b.city,
            "timezone": b.timezone,
            "currency": b.currency,
            "updated_at": updated,
        }
        for b in h.biz.itertuples()
    )
    man.add(api / "businesses.jsonl", write_json_lines(api / "businesses.jsonl", businesses))
    locations = (
        {
            "id": x.id,
            "business_id": x.business_id,
            "name": x.name,
            "city": x.city,
            "address": x.address,
            "timezone": x.timezone,
            "updated_at": updated,
        }
        for x in h.locs.itertuples()
    )
    man.add(api / "locations.jsonl", write_json_lines(api / "locations.jsonl", locations))
    services = (
        {
            "id": x.id,
            "business_id": x.business_id,
            "name": x.name,
            "category": x.category,
            "price": money_str(x.price_minor),
            "currency": x.currency,
            "duration_min": int(x.duration_min),
            "updated_at": updated,
        }
        for x, exported in zip(
            h.svcs.itertuples(), view.is_export[h.svcs["business_idx"].to_numpy()], strict=True
        )
        if not exported
    )
    man.add(api / "services.jsonl", write_json_lines(api / "services.jsonl", services))


# ---------------------------------------------------------------- customers and drops


def write_crm_records(
    out_dir: Path, man: Manifest, h: History, view: CrmView, rng: np.random.Generator
) -> tuple[list[str], int]:
    """The CRM half of the files: API customers and appointments, and the file drops.
    Returns the ids of the businesses with file drops and the number of appointments."""
    r = h.n_rels
    ts = view.timestamps
    start_minute = rng.integers(9 * 60, 21 * 60, size=r)
    created_s = local_to_utc(
        h.day0_epoch + h.lat.start_day, start_minute - 30, view.rel_tz, view.zones
    )
    # ~5% profiles completed later: first version without birthday, a later full version
    updated_later = view.birthday_known & (rng.random(r) < 0.05) & (view.invalid < 0)
    updated_s = created_s + (
        rng.random(r) * (h.day0_epoch * 86_400 + HISTORY_DAYS * 86_400 - created_s)
    ).astype(np.int64)
    appt = appointments.draw_appointments(h, view, rng)
    customer_ids = bytes_to_arrow(
        np.concatenate([np.full((r, 1), ord("C"), np.uint8), _lines.digits(np.arange(r) + 1, 9)], 1)
    )
    created = bytes_to_arrow(ts.render(created_s))
    api = out_dir / "crm" / "api"
    n_customers = _write_customers(
        api / "customers.jsonl",
        h,
        view,
        customer_ids,
        created,
        updated_later,
        bytes_to_arrow(ts.render(updated_s)),
    )
    man.add(api / "customers.jsonl", n_customers)
    written = appointments.write_appointments_api(
        api / "appointments.jsonl", appt, ts, view.is_export, r, len(h.offers)
    )
    man.add(api / "appointments.jsonl", written["lines"], records=written["records"])
    exports = crm_exports.write_exports(out_dir, man, h, view, appt, customer_ids, created)
    return exports, int(appt["n"])


def _write_customers(
    path: Path,
    h: History,
    view: CrmView,
    customer_ids: pa.Array,
    created: pa.Array,
    updated_later: np.ndarray,
    updated: pa.Array,
) -> int:
    """API customers as a change log: the first version of every customer, then the later
    full version of the profiles completed later (their first version has no birthday)."""
    business_ids = np.array(h.biz["id"].tolist(), dtype=object)
    columns = {
        "id": customer_ids,
        "business_id": pa.array(business_ids[h.lat.business], pa.string()),
        "phone": view.phones,
        "name": view.names,
        "marketing_consent": pa.array(np.where(h.lat.consent, "true", "false"), pa.string()),
        "created_at": created,
    }
    first = _customer_lines(view, columns, view.birthday_known & ~updated_later, created)
    full = _customer_lines(view, columns, view.birthday_known, updated)
    api_rows = np.flatnonzero(~view.rel_export)
    later_rows = np.flatnonzero(~view.rel_export & updated_later)
    n = write_arrow_lines(path, first.take(pa.array(api_rows)))
    return n + write_arrow_lines(path, full.take(pa.array(later_rows)), mode="ab")


def _customer_lines(
    view: CrmView, columns: dict[str, pa.Array], birthday_mask: np.ndarray, updated: pa.Array
) -> pa.Array:
    """A customers.jsonl line per relationship, with the birthday where `birthday_mask`
    and the gender where the CRM knows it."""

    def where(mask: np.ndarray, values: pa.Array) -> pa.Array:
        return pa.array(np.where(mask, values.to_numpy(zero_copy_only=False), None), pa.string())

    return arrow_json_lines(
        [
            ("id", columns["id"], "str"),
            ("business_id", columns["business_id"], "str"),
            ("phone", columns["phone"], "str"),
            ("name", columns["name"], "str"),
            ("birthday", where(birthday_mask, view.birthday), "str"),
            ("gender", where(view.gender_known, view.gender), "str"),
            ("marketing_consent", columns["marketing_consent"], "raw"),
            ("created_at", columns["created_at"], "str"),
            ("updated_at", updated, "str"),
        ]
    )
