"""The world and its simulated history: everything drawn before any file is written.

The static world comes from `world`, the behaviour of each relationship and the daily
process from `model`, partner offers from `partners`. The result, `History`, is what the
writers render into the sources (`crm`, `messaging`, `partners`) and the ground truth
(`truth`); the writers draw their own random numbers (quirks of the data, not behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from simulation.ecosystem import partners
from simulation.ecosystem.common import EPOCH, RandomStreams
from simulation.ecosystem.model import (
    HISTORY_DAYS,
    Latent,
    SimResult,
    Simulator,
    concat_latent,
    draw_latent,
    plan_partner_offers,
)
from simulation.ecosystem.world import (
    KIND_NAMES,
    assign_relationships,
    e164,
    make_businesses,
    make_locations_services,
    make_persons,
)

CUSTOMERS_PER_BUSINESS = 400


@dataclass
class History:
    """The static world, every relationship's latent behaviour and what happened.

    A relationship is a person as the customer of one business (one CRM customer
    record, id `C<rel + 1>`); the relationships of partner conversions come last."""

    day0: date  # the first day of the history: as_of − HISTORY_DAYS
    day0_epoch: int
    biz: pd.DataFrame  # one row per business (index = business idx)
    locs: pd.DataFrame
    svcs: pd.DataFrame
    persons: pd.DataFrame  # one row per person (index = person idx)
    phone_e164: np.ndarray  # per person: the real number the CRM spellings come from
    lat: Latent  # per relationship
    offers: pd.DataFrame
    conversions: pd.DataFrame  # partner conversions (model.plan_partner_offers)
    res: SimResult  # appointment slots, sends and the truth table

    @property
    def n_rels(self) -> int:
        return len(self.lat)


def simulate_history(rngs: RandomStreams, customers: int, as_of: date) -> History:
    """The world of `customers` people and its HISTORY_DAYS days up to `as_of` (plus the
    future bookings already made)."""
    as_of_epoch = (as_of - EPOCH).days
    day0_epoch = as_of_epoch - HISTORY_DAYS
    n_bus = max(6, round(customers / CUSTOMERS_PER_BUSINESS))
    biz = make_businesses(rngs.world, n_bus)
    locs, svcs = make_locations_services(rngs.world, biz)
    persons = make_persons(rngs.world, customers, biz, as_of_epoch)
    rels = assign_relationships(rngs.world, persons, biz)
    lat = _draw_latent(rngs.latent, biz, persons, rels["person"], rels["business"])
    offers = partners.make_offers(rngs.offers, biz, lat)
    plan, conversions = plan_partner_offers(
        rngs.offers,
        lat,
        offers,
        persons["birthday"].to_numpy() - day0_epoch,
        persons["gender"].to_numpy(),
    )
    if len(conversions):
        # a conversion starts a new relationship with the publisher on its first visit
        conv_lat = _draw_latent(
            rngs.latent,
            biz,
            persons,
            conversions["person"],
            conversions["publisher"],
            start_day=conversions["day"].to_numpy(),
            promo_offer=conversions["offer"].to_numpy(),
        )
        lat = concat_latent(lat, conv_lat)
    sim = Simulator(
        rngs.simulation,
        lat,
        birthday_doy=_birthday_doy(persons, lat.person),
        day0_epoch=day0_epoch,
        partner_plan=plan,
    )
    return History(
        day0=as_of - timedelta(days=HISTORY_DAYS),
        day0_epoch=day0_epoch,
        biz=biz,
        locs=locs,
        svcs=svcs,
        persons=persons,
        phone_e164=e164(persons).to_numpy(zero_copy_only=False),
        lat=lat,
        offers=offers,
        conversions=conversions,
        res=sim.run(),
    )


def _draw_latent(
    rng: np.random.Generator,
    biz: pd.DataFrame,
    persons: pd.DataFrame,
    person: pd.Series,
    business: pd.Series,
    *,
    start_day: np.ndarray | None = None,
    promo_offer: np.ndarray | None = None,
) -> Latent:
    """`model.draw_latent` for (person, business) pairs, with the business's kind and the
    person's country looked up."""
    kind_code = biz["kind"].map({k: i for i, k in enumerate(KIND_NAMES)}).to_numpy()
    person_np, business_np = person.to_numpy(), business.to_numpy()
    return draw_latent(
        rng,
        person_np,
        business_np,
        kind_code[business_np],
        persons["country"].to_numpy()[person_np],
        start_day=start_day,
        promo_offer=promo_offer,
    )


def _birthday_doy(
    persons: pd.DataFrame, person: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(month, day of month, known) of the birthday of each relationship's person: the
    birthday messages the simulated platform plans."""
    bdates = persons["birthday"].to_numpy().astype("datetime64[D]")
    months = bdates.astype("datetime64[M]")
    bmonth = months.astype(np.int64) % 12 + 1
    bday = (bdates - months.astype("datetime64[D]")).astype(np.int64) + 1
    return bmonth[person], bday[person], persons["birthday_known"].to_numpy()[person]
