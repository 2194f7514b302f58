"""The latent behaviour model: who visits when, who drops out, what messages do, and the
exact probabilities behind it (the ground truth).

Time is counted in *days* (local calendar dates of each business): day 0 is
`as_of - HISTORY_DAYS`, day `HISTORY_DAYS` is `as_of`. The platform plans messages in
30-day periods that start on days 0, 30, 60, … (so every truth cutoff is a period start).

Per relationship (a person as a customer of one business):

- a visit rate λ per day, Gamma(2, ·) with the business kind's mean interval;
- alive/dead (BG/NBD-like): after each completed visit the customer drops out with
  probability p (Beta-distributed), after the very first visit with `P_FIRST_DROP`;
- on each day an alive customer has a *slot* (an appointment on that day) with
  probability π = 1 − exp(−λ·m), where m = 1 + uplift while a delivered message's
  effect lasts (`EFFECT_DAYS`); a slot's lead time L (days between booking and visit,
  0 = walk-in) is drawn from `LEAD_PMF`, its outcome is completed with probability q
  (kind-dependent), else cancelled or no-show;
- bookings made before a drop-out survive it (they end cancelled/no-show): this keeps
  the bookings known at a cutoff independent of what happens after it.

Truth at a cutoff c (a period start) for a relationship that started before c: the
probability of at least one completed visit on days [c, c+30). Before the first
completed visit in the window the customer stays alive and the message effects are
fixed by the plan made at c, so days are independent and

    P(no completed visit) = Π_{days with a booking known at c} (1 − q)
                          × Π_{other days} (1 − π·F(k)·q / (1 − π·(1 − F(k))))

with k = day − c and F(k) = P(L ≤ k) (a slot on that day not yet booked at c). Dead
customers have probability 0. The simulation draws outcomes from exactly this process,
so truth and outcome are coherent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ingestion.synthetic.world import KIND_NAMES, KINDS

HISTORY_DAYS = 540
FUTURE_DAYS = 30
PERIOD_DAYS = 30
WINDOW_DAYS = 30
TRUTH_CUTOFFS = 6  # monthly cutoffs before as_of (as_of itself is added)
EFFECT_DAYS = 14
MAX_LEAD = 21
P_FIRST_DROP = 0.30
PREHISTORY_SHARE = 0.45
PREHISTORY_ALIVE = 0.65

TRIGGERS = ("birthday", "reminder", "winback", "partner_offer", "personal_offer")
T_BIRTHDAY, T_REMINDER, T_WINBACK, T_PARTNER, T_PERSONAL = range(5)
#: true multiplicative uplift of the visit hazard while a delivered message acts
UPLIFT = np.array([0.5, 0.6, 1.0, 0.0, 0.8], dtype=np.float64)
HOLDOUT_SHARE = 0.10
PERSONAL_OFFER_SHARE = 0.05
PARTNER_CONVERSION = 0.12
CHANNELS = ("whatsapp", "telegram", "sms")

OUT_COMPLETED, OUT_CANCELLED, OUT_NO_SHOW = 0, 1, 2


def lead_pmf() -> np.ndarray:
    """P(L = k) for k = 0..MAX_LEAD: 35% walk-ins, the rest booked ~5 days ahead."""
    k = np.arange(1, MAX_LEAD + 1)
    geo = 0.2 * 0.8 ** (k - 1)
    pmf = np.concatenate([[0.35], 0.65 * geo / geo.sum()])
    return pmf


LEAD_PMF = lead_pmf()
LEAD_CDF = np.cumsum(LEAD_PMF)
LEAD_CDF[-1] = 1.0


@dataclass
class Latent:
    """Per-relationship latent state and platform attributes (arrays of length R)."""

    person: np.ndarray
    business: np.ndarray
    kind: np.ndarray
    start_day: np.ndarray
    lam: np.ndarray
    p_drop: np.ndarray
    q: np.ndarray
    alive0: np.ndarray
    death0: np.ndarray
    last0: np.ndarray
    consent: np.ndarray
    channel: np.ndarray
    reachable: np.ndarray
    opt_out_day: np.ndarray
    promo_offer: np.ndarray  # offer idx of the acquisition visit, -1 if none

    def __len__(self) -> int:
        return len(self.person)


def draw_latent(
    rng: np.random.Generator,
    person: np.ndarray,
    business: np.ndarray,
    kind: np.ndarray,
    country: np.ndarray,
    *,
    start_day: np.ndarray | None = None,
    promo_offer: np.ndarray | None = None,
) -> Latent:
    """Latent draws for relationships; `start_day` given for relationships that begin
    with a known first visit (partner conversions), else drawn (pre-history or joining
    during the history)."""
    r = len(person)
    mean_interval = np.array([KINDS[k][0] for k in KIND_NAMES])[kind]
    q = np.array([KINDS[k][1] for k in KIND_NAMES])[kind]
    lam = rng.gamma(2.0, 1.0 / (2.0 * mean_interval))
    lam = np.minimum(lam, 0.5)
    p_drop = rng.beta(1.2, 22.0, size=r)
    if start_day is None:
        pre = rng.random(r) < PREHISTORY_SHARE
        start_day = np.where(
            pre, -rng.integers(1, 730, size=r), rng.integers(0, HISTORY_DAYS, size=r)
        )
        alive0 = ~pre | (rng.random(r) < PREHISTORY_ALIVE)
        last0 = np.where(
            alive0,
            -rng.integers(1, 1 + np.ceil(1.5 * mean_interval).astype(np.int64)),
            -rng.integers(30, 400, size=r),
        )
        last0 = np.where(pre, np.maximum(last0, start_day), start_day)
    else:
        alive0 = np.ones(r, dtype=bool)
        last0 = start_day.copy()
    death0 = np.where(alive0, np.iinfo(np.int32).max // 2, -10_000)
    # WhatsApp dominates in Russia/Kazakhstan and Germany; Telegram second; SMS fallback
    channel = rng.choice(3, size=r, p=[0.55, 0.25, 0.20])
    channel = np.where((country == 2) & (channel == 1), 0, channel)
    opt_out = (channel != 2) & (rng.random(r) < 0.04)
    opt_out_day = np.where(
        opt_out,
        rng.integers(0, HISTORY_DAYS, size=r),
        np.iinfo(np.int32).max // 2,
    )
    return Latent(
        person=person.astype(np.int64),
        business=business.astype(np.int64),
        kind=kind.astype(np.int64),
        start_day=start_day.astype(np.int64),
        lam=lam,
        p_drop=p_drop,
        q=q,
        alive0=alive0,
        death0=death0.astype(np.int64),
        last0=last0.astype(np.int64),
        consent=rng.random(r) < 0.8,
        channel=channel.astype(np.int64),
        reachable=rng.random(r) < 0.95,
        opt_out_day=opt_out_day.astype(np.int64),
        promo_offer=(np.full(r, -1) if promo_offer is None else promo_offer).astype(np.int64),
    )


def concat_latent(a: Latent, b: Latent) -> Latent:
    return Latent(
        **{f: np.concatenate([getattr(a, f), getattr(b, f)]) for f in Latent.__dataclass_fields__}
    )


@dataclass
class Sends:
    rel: np.ndarray
    day: np.ndarray
    trigger: np.ndarray
    holdout: np.ndarray
    delivered: np.ndarray
    offer: np.ndarray


@dataclass
class SimResult:
    """Appointment slots (one per row) and sends, in simulation order."""

    ev_rel: np.ndarray
    ev_day: np.ndarray
    ev_lead: np.ndarray
    ev_outcome: np.ndarray
    ev_acq: np.ndarray
    sends: Sends
    truth: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass
class _Snapshot:
    cutoff: int
    rels: np.ndarray  # relationships that started before the cutoff
    alive: np.ndarray
    log_s: np.ndarray  # log P(no completed visit) without known bookings
    log_s_nomsg: np.ndarray
    trigger: np.ndarray  # planned message's trigger in the window (-1 none, -2 holdout)
    eff: np.ndarray  # (6, n) prev_start, prev_end, prev_u, cur_start, cur_end, cur_u


def _multiplier(eff: np.ndarray, day: np.ndarray | int, with_current: bool = True) -> np.ndarray:
    prev = np.where((eff[0] <= day) & (day < eff[1]), eff[2], 0.0)
    if not with_current:
        return 1.0 + prev
    cur = np.where((eff[3] <= day) & (day < eff[4]), eff[5], 0.0)
    return 1.0 + np.maximum(prev, cur)


def _no_booking_factor(
    lam: np.ndarray, q: np.ndarray, m: np.ndarray, k: np.ndarray | int
) -> np.ndarray:
    pi = -np.expm1(-lam * m)
    big_f = LEAD_CDF[np.minimum(k, MAX_LEAD)]
    return 1.0 - pi * big_f * q / (1.0 - pi * (1.0 - big_f))


class Simulator:
    """Runs the daily process; `planner(c, ...)` fills the message plan of each period."""

    def __init__(
        self,
        rng: np.random.Generator,
        lat: Latent,
        *,
        birthday_doy: tuple[np.ndarray, np.ndarray, np.ndarray],
        day0_epoch: int,
        partner_plan: dict[int, Sends],
    ) -> None:
        self.rng = rng
        self.lat = lat
        self.bmonth, self.bday, self.bknown = birthday_doy
        self.day0_epoch = day0_epoch
        self.partner_plan = partner_plan
        self.mean_interval = np.array([KINDS[k][0] for k in KIND_NAMES])[lat.kind]

    # -- planner ---------------------------------------------------------------------
    def _plan(self, c: int, last_visit: np.ndarray, last_winback: np.ndarray) -> Sends:
        rng, lat = self.rng, self.lat
        r = len(lat)
        trig = np.full(r, -1, dtype=np.int64)
        sday = np.zeros(r, dtype=np.int64)
        offer = np.full(r, -1, dtype=np.int64)
        eligible = (lat.start_day < c) & lat.consent
        pp = self.partner_plan.get(c)
        if pp is not None and len(pp.rel):
            trig[pp.rel] = T_PARTNER
            sday[pp.rel] = pp.day
            offer[pp.rel] = pp.offer
        free = eligible & (trig < 0)
        # birthday inside the window (local calendar)
        year = int(str(np.datetime64(self.day0_epoch + c, "D"))[:4])
        for y in (year, year + 1):
            bd = (
                (np.datetime64(f"{y}-01", "M") + (self.bmonth - 1)).astype("datetime64[D]")
                + (self.bday - 1)
            ).astype(np.int64) - self.day0_epoch
            hit = free & self.bknown & (bd >= c) & (bd < c + PERIOD_DAYS)
            trig[hit], sday[hit] = T_BIRTHDAY, bd[hit]
            free &= ~hit
        due = last_visit + np.round(self.mean_interval).astype(np.int64)
        hit = free & (due > c) & (due < c + PERIOD_DAYS)
        trig[hit], sday[hit] = T_REMINDER, due[hit]
        free &= ~hit
        hit = free & (c - last_visit >= 2.5 * self.mean_interval) & (c - last_winback >= 90)
        trig[hit], sday[hit] = T_WINBACK, c + rng.integers(0, 7, size=r)[hit]
        free &= ~hit
        hit = free & (rng.random(r) < PERSONAL_OFFER_SHARE)
        trig[hit], sday[hit] = T_PERSONAL, c + rng.integers(0, PERIOD_DAYS, size=r)[hit]
        planned = (
            (trig >= 0)
            & (sday < HISTORY_DAYS)
            & (sday < lat.opt_out_day)
            & (eligible | (trig == T_PARTNER))
        )
        rel = np.flatnonzero(planned)
        tr = trig[rel]
        holdout = rng.random(len(rel)) < HOLDOUT_SHARE
        if pp is not None and len(pp.rel):
            # partner sends were drawn (holdout included) when the offers were planned
            pos = np.searchsorted(pp.rel, rel)
            is_p = tr == T_PARTNER
            holdout[is_p] = pp.holdout[np.minimum(pos, len(pp.rel) - 1)[is_p]]
        delivered = ~holdout & lat.reachable[rel]
        last_winback[rel[tr == T_WINBACK]] = c
        return Sends(rel, sday[rel], tr, holdout, delivered, offer[rel])

    # -- run -------------------------------------------------------------------------
    def run(self) -> SimResult:
        rng, lat = self.rng, self.lat
        r = len(lat)
        total_days = HISTORY_DAYS + FUTURE_DAYS
        cutoffs = {HISTORY_DAYS - PERIOD_DAYS * j for j in range(TRUTH_CUTOFFS + 1)}
        alive = lat.alive0.copy()
        death = lat.death0.copy()
        last_visit = lat.last0.copy()
        last_winback = np.full(r, -10_000, dtype=np.int64)
        eff = np.zeros((6, r), dtype=np.float64)
        order = np.argsort(lat.start_day, kind="stable")
        sorted_start = lat.start_day[order]
        ev: dict[str, list[np.ndarray]] = {k: [] for k in ("rel", "day", "lead", "out", "acq")}
        sends: list[Sends] = []
        snaps: list[_Snapshot] = []

        def record(
            rels: np.ndarray, day: int, lead: np.ndarray, out: np.ndarray, acq: bool
        ) -> None:
            ev["rel"].append(rels)
            ev["day"].append(np.full(len(rels), day, dtype=np.int32))
            ev["lead"].append(lead.astype(np.int8))
            ev["out"].append(out.astype(np.int8))
            ev["acq"].append(np.full(len(rels), acq))

        for c in range(0, total_days, PERIOD_DAYS):
            eff[0:3] = eff[3:6]
            eff[3:6] = 0.0
            if c < HISTORY_DAYS:
                s = self._plan(c, last_visit, last_winback)
                sends.append(s)
                u = np.where(s.delivered, UPLIFT[s.trigger], 0.0)
                eff[3, s.rel] = s.day
                eff[4, s.rel] = s.day + EFFECT_DAYS
                eff[5, s.rel] = u
            if c in cutoffs:
                snaps.append(self._snapshot(c, alive, eff, sends[-1] if c < HISTORY_DAYS else None))
            end = min(c + PERIOD_DAYS, total_days)
            cand = np.flatnonzero((lat.start_day < end) & (alive | (death >= c - MAX_LEAD)))
            lam_c, q_c, pd_c = lat.lam[cand], lat.q[cand], lat.p_drop[cand]
            start_c = lat.start_day[cand]
            alive_c, death_c = alive[cand], death[cand]
            eff_c = eff[:, cand]
            pi_base = (-np.expm1(-lam_c)).astype(np.float32)
            boosted = np.flatnonzero((eff_c[2] > 0) | (eff_c[5] > 0))
            for t in range(c, end):
                # acquisition: the first visit of a relationship that starts today
                lo, hi = np.searchsorted(sorted_start, [t, t + 1])
                if hi > lo:
                    acq = order[lo:hi]
                    lead = rng.choice(MAX_LEAD + 1, size=len(acq), p=LEAD_PMF)
                    record(acq, t, lead, np.zeros(len(acq)), True)
                    last_visit[acq] = t
                    drop = rng.random(len(acq)) < P_FIRST_DROP
                    pos = np.searchsorted(cand, acq[drop])
                    alive_c[pos] = False
                    death_c[pos] = t
                u = rng.random(len(cand), dtype=np.float32)
                hit = u < pi_base
                if len(boosted):
                    pb = -np.expm1(-lam_c[boosted] * _multiplier(eff_c[:, boosted], t))
                    hit[boosted] = u[boosted] < pb
                h = np.flatnonzero(hit)
                h = h[start_c[h] < t]
                if not len(h):
                    continue
                lead = rng.choice(MAX_LEAD + 1, size=len(h), p=LEAD_PMF)
                ok = alive_c[h] | (t - lead <= death_c[h])
                h, lead = h[ok], lead[ok]
                a = alive_c[h]
                u2 = rng.random(len(h))
                out = np.where(
                    a & (u2 < q_c[h]),
                    OUT_COMPLETED,
                    np.where(
                        a,
                        np.where(u2 < q_c[h] + (1 - q_c[h]) * 0.65, OUT_CANCELLED, OUT_NO_SHOW),
                        np.where(u2 < 0.6, OUT_CANCELLED, OUT_NO_SHOW),
                    ),
                )
                record(cand[h], t, lead, out, False)
                done = h[out == OUT_COMPLETED]
                last_visit[cand[done]] = t
                drop = done[rng.random(len(done)) < pd_c[done]]
                alive_c[drop] = False
                death_c[drop] = t
            alive[cand] = alive_c
            death[cand] = death_c

        all_sends = Sends(
            *(np.concatenate([getattr(s, f) for s in sends]) for f in Sends.__dataclass_fields__)
        )
        res = SimResult(
            ev_rel=np.concatenate(ev["rel"]).astype(np.int64),
            ev_day=np.concatenate(ev["day"]),
            ev_lead=np.concatenate(ev["lead"]),
            ev_outcome=np.concatenate(ev["out"]),
            ev_acq=np.concatenate(ev["acq"]),
            sends=all_sends,
        )
        res.truth = self._truth(snaps, res)
        return res

    # -- truth -----------------------------------------------------------------------
    def _snapshot(
        self, c: int, alive: np.ndarray, eff: np.ndarray, plan: Sends | None
    ) -> _Snapshot:
        lat = self.lat
        rels = np.flatnonzero(lat.start_day < c)
        al = alive[rels]
        live = rels[al]
        e = eff[:, live]
        lam, q = lat.lam[live], lat.q[live]
        log_s = np.zeros(len(live))
        log_n = np.zeros(len(live))
        for k in range(WINDOW_DAYS):
            log_s += np.log(_no_booking_factor(lam, q, _multiplier(e, c + k), k))
            log_n += np.log(_no_booking_factor(lam, q, _multiplier(e, c + k, False), k))
        full_s = np.zeros(len(rels))
        full_n = np.zeros(len(rels))
        full_s[al], full_n[al] = log_s, log_n
        trig = np.full(len(rels), -1, dtype=np.int64)
        if plan is not None:
            pos = np.searchsorted(rels, plan.rel)
            inside = (pos < len(rels)) & (rels[np.minimum(pos, len(rels) - 1)] == plan.rel)
            trig[pos[inside]] = np.where(plan.holdout[inside], -2, plan.trigger[inside])
        eff_all = np.zeros((6, len(rels)))
        eff_all[:, al] = e
        return _Snapshot(c, rels, al, full_s, full_n, trig, eff_all)

    def _truth(self, snaps: list[_Snapshot], res: SimResult) -> pd.DataFrame:
        lat = self.lat
        frames = []
        slot = ~res.ev_acq
        for sn in snaps:
            c = sn.cutoff
            in_win = (res.ev_day >= c) & (res.ev_day < c + WINDOW_DAYS)
            # bookings known at c: made before c for a day in the window
            known = slot & in_win & (res.ev_day - res.ev_lead < c)
            kr, kd = res.ev_rel[known], res.ev_day[known]
            pos = np.searchsorted(sn.rels, kr)
            posc = np.minimum(pos, len(sn.rels) - 1)
            ok = (pos < len(sn.rels)) & (sn.rels[posc] == kr)
            ok[ok] &= sn.alive[pos[ok]]
            pos, kd = pos[ok], kd[ok]
            rel = sn.rels[pos]
            lam, q = lat.lam[rel], lat.q[rel]
            e = sn.eff[:, pos]
            k = kd - c
            log_s, log_n = sn.log_s.copy(), sn.log_s_nomsg.copy()
            np.add.at(
                log_s, pos, np.log1p(-q) - np.log(_no_booking_factor(lam, q, _multiplier(e, kd), k))
            )
            np.add.at(
                log_n,
                pos,
                np.log1p(-q) - np.log(_no_booking_factor(lam, q, _multiplier(e, kd, False), k)),
            )
            p = np.where(sn.alive, -np.expm1(log_s), 0.0)
            pn = np.where(sn.alive, -np.expm1(log_n), 0.0)
            n_known = np.bincount(pos, minlength=len(sn.rels))
            if c + WINDOW_DAYS <= HISTORY_DAYS:
                done = in_win & (res.ev_outcome == OUT_COMPLETED)
                hit = np.zeros(len(lat), dtype=bool)
                hit[res.ev_rel[done]] = True
                outcome = pd.array(hit[sn.rels], dtype="boolean")
            else:
                outcome = pd.array([pd.NA] * len(sn.rels), dtype="boolean")
            frames.append(
                pd.DataFrame(
                    {
                        "cutoff_day": c,
                        "rel": sn.rels,
                        "probability": p,
                        "probability_without_message": pn,
                        "outcome": outcome,
                        "alive": sn.alive,
                        "visit_rate_per_day": lat.lam[sn.rels],
                        "known_bookings": n_known.astype(np.int16),
                        "planned_trigger": sn.trigger,
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)


def plan_partner_offers(
    rng: np.random.Generator,
    lat: Latent,
    offers: pd.DataFrame,
    age_days_at: np.ndarray,
    person_gender: np.ndarray,
) -> tuple[dict[int, Sends], pd.DataFrame]:
    """Recipients of each offer per period (distributors' customers in the audience who
    are not yet the publisher's customers), and the conversions they bring.

    Returns ({period start: Sends sorted by rel}, conversions with columns
    offer, rel (the distributor relationship), person, publisher, send_day, day, holdout).
    `age_days_at` is the person's birthday as a day number (age = day − it).
    """
    by_period: dict[int, list[tuple[np.ndarray, ...]]] = {}
    targeted: set[tuple[int, int]] = set()
    pub_people = pd.DataFrame({"person": lat.person, "business": lat.business})
    known_pairs = set(
        zip(pub_people["person"].tolist(), pub_people["business"].tolist(), strict=True)
    )
    conv_rows = []
    for o in offers.itertuples():
        dist_mask = np.isin(lat.business, np.array(o.distributor_idx))
        cand_all = np.flatnonzero(dist_mask & lat.consent)
        for c in range(0, HISTORY_DAYS, PERIOD_DAYS):
            if not (o.valid_from_day <= c < o.valid_to_day):
                continue
            cand = cand_all[lat.start_day[cand_all] < c]
            age = (c - age_days_at[lat.person[cand]]) / 365.25
            ok = (age >= o.min_age) & (age <= o.max_age)
            if o.gender is not None:
                ok &= person_gender[lat.person[cand]] == (0 if o.gender == "f" else 1)
            cand = cand[ok]
            cand = cand[rng.random(len(cand)) < 0.3]
            keep = [
                i
                for i in cand.tolist()
                if (int(lat.person[i]), o.publisher_idx) not in known_pairs
                and (int(lat.person[i]), o.idx) not in targeted
            ]
            cand = np.array(keep, dtype=np.int64)
            day = c + rng.integers(0, PERIOD_DAYS, size=len(cand))
            ok = (day < o.valid_to_day) & (day < HISTORY_DAYS) & (day < lat.opt_out_day[cand])
            cand, day = cand[ok], day[ok]
            holdout = rng.random(len(cand)) < HOLDOUT_SHARE
            for i in cand.tolist():
                targeted.add((int(lat.person[i]), o.idx))
            by_period.setdefault(c, []).append((cand, day, np.full(len(cand), o.idx), holdout))
            delivered = ~holdout & lat.reachable[cand]
            conv = delivered & (rng.random(len(cand)) < PARTNER_CONVERSION)
            cday = day + 1 + rng.geometric(0.15, size=len(cand))
            conv &= (cday < HISTORY_DAYS) & (cday < o.valid_to_day)
            for i, sd, cd, ho in zip(
                cand[conv].tolist(),
                day[conv].tolist(),
                cday[conv].tolist(),
                holdout[conv].tolist(),
                strict=True,
            ):
                conv_rows.append((o.idx, i, int(lat.person[i]), o.publisher_idx, sd, cd, ho))
    plan: dict[int, Sends] = {}
    for c, parts in by_period.items():
        rel = np.concatenate([p[0] for p in parts])
        day = np.concatenate([p[1] for p in parts])
        off = np.concatenate([p[2] for p in parts])
        ho = np.concatenate([p[3] for p in parts])
        # one message per relationship and period: keep the first offer
        _, first = np.unique(rel, return_index=True)
        rel, day, off, ho = rel[first], day[first], off[first], ho[first]
        plan[c] = Sends(rel, day, np.full(len(rel), T_PARTNER), ho, ~ho & lat.reachable[rel], off)
    conv = pd.DataFrame(
        conv_rows, columns=["offer", "rel", "person", "publisher", "send_day", "day", "holdout"]
    )
    if len(conv):
        # the send must have survived the one-message-per-period rule
        kept = set()
        for s in plan.values():
            kept.update(zip(s.rel.tolist(), s.offer.tolist(), strict=True))
        conv = conv[[(r, o) in kept for r, o in zip(conv["rel"], conv["offer"], strict=True)]]
        conv = conv.sort_values(["day", "rel"], kind="stable")
        conv = conv.drop_duplicates(["person", "publisher"], keep="first")
        cap = offers.set_index("idx")["capacity"]
        conv = conv[conv.groupby("offer").cumcount() < conv["offer"].map(cap)]
    return plan, conv.reset_index(drop=True)
