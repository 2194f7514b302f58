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

from simulation.ecosystem.world import KIND_NAMES, KINDS

HISTORY_DAYS = 540
FUTURE_DAYS = 30
PERIOD_DAYS = 30
WINDOW_DAYS = 30
TRUTH_CUTOFFS = 6  # monthly cutoffs before as_of (as_of itself is added)
EFFECT_DAYS = 14
MAX_LEAD = 21
P_FIRST_DROP = 0.30
#: Beta parameters of the drop-out probability after a completed visit
P_DROP_BETA = (1.2, 55.0)  # mean 2.1%: regulars stay for ~50 visits
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
    p_drop = rng.beta(*P_DROP_BETA, size=r)
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


def _log_no_booking(pi: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """log of `_no_booking_factor` for slot probabilities `pi` on day k of the window."""
    big_f = LEAD_CDF[min(k, MAX_LEAD)]
    return np.log1p(-pi * big_f * q / (1.0 - pi * (1.0 - big_f)))


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
        self._birthdays: dict[int, np.ndarray] = {}

    # -- planner ---------------------------------------------------------------------
    def _birthdays_in(self, year: int) -> np.ndarray:
        """Day numbers of every relationship's birthday in `year` (cached per year)."""
        if year not in self._birthdays:
            self._birthdays[year] = (
                (np.datetime64(f"{year}-01", "M") + (self.bmonth - 1)).astype("datetime64[D]")
                + (self.bday - 1)
            ).astype(np.int64) - self.day0_epoch
        return self._birthdays[year]

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
            bd = self._birthdays_in(y)
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
        lat = self.lat
        r = len(lat)
        total_days = HISTORY_DAYS + FUTURE_DAYS
        cutoffs = {HISTORY_DAYS - PERIOD_DAYS * j for j in range(TRUTH_CUTOFFS + 1)}
        alive = lat.alive0.copy()
        death = lat.death0.copy()
        last_visit = lat.last0.copy()
        last_winback = np.full(r, -10_000, dtype=np.int64)
        eff = np.zeros((6, r), dtype=np.float64)
        ev: dict[str, list[np.ndarray]] = {k: [] for k in ("rel", "day", "lead", "out", "acq")}
        sends: list[Sends] = []
        snaps: list[_Snapshot] = []

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
            rel, day, lead, out, acq = self._period(c, end, alive, death, eff)
            for k, v in zip(ev, (rel, day, lead, out, acq), strict=True):
                ev[k].append(v)
            done = out == OUT_COMPLETED
            np.maximum.at(last_visit, rel[done], day[done])

        all_sends = Sends(
            *(np.concatenate([getattr(s, f) for s in sends]) for f in Sends.__dataclass_fields__)
        )
        res = SimResult(
            ev_rel=np.concatenate(ev["rel"]),
            ev_day=np.concatenate(ev["day"]).astype(np.int32),
            ev_lead=np.concatenate(ev["lead"]).astype(np.int8),
            ev_outcome=np.concatenate(ev["out"]).astype(np.int8),
            ev_acq=np.concatenate(ev["acq"]),
            sends=all_sends,
        )
        res.truth = self._truth(snaps, res)
        return res

    def _period(
        self, c: int, end: int, alive: np.ndarray, death: np.ndarray, eff: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """The days [c, end) at once; updates `alive`/`death` in place and returns the
        events (rel, day, lead, outcome, acquisition) ordered by (day, acquisitions
        first, rel).

        Outcomes depend on being alive, which only changes at a drop-out; a relationship
        alive at c stays alive up to its first *drop candidate* (the acquisition, or a
        slot that would complete and be followed by a drop), so the whole period is
        resolved without stepping through days."""
        rng, lat = self.rng, self.lat
        cand = np.flatnonzero((lat.start_day < end) & (alive | (death >= c - MAX_LEAD)))
        h, t = self._slot_days(c, end, lat.lam[cand], eff[:, cand])
        start = lat.start_day[cand]
        ok = start[h] < t
        h, t = h[ok], t[ok]
        # acquisitions: the first visit of relationships starting in the period
        new = np.flatnonzero((start >= c) & (start < end))
        n_s, n_a = len(h), len(new)
        idx = np.concatenate([new, h])
        day = np.concatenate([start[new], t])
        is_acq = np.arange(n_a + n_s) < n_a
        lead = rng.choice(MAX_LEAD + 1, size=n_a + n_s, p=LEAD_PMF)
        u_out = rng.random(n_a + n_s)
        u_drop = rng.random(n_a + n_s)
        q = lat.q[cand[idx]]
        would_drop = np.where(
            is_acq, u_drop < P_FIRST_DROP, (u_out < q) & (u_drop < lat.p_drop[cand[idx]])
        )
        alive_c = alive[cand]
        first_drop = np.full(len(cand), np.iinfo(np.int64).max)
        np.minimum.at(first_drop, idx[would_drop & alive_c[idx]], day[would_drop & alive_c[idx]])
        a = alive_c[idx] & (day <= first_drop[idx])
        dropped = first_drop < np.iinfo(np.int64).max
        death_c = np.where(dropped, first_drop, death[cand])
        keep = a | (day - lead <= death_c[idx])
        out = np.where(
            is_acq,
            OUT_COMPLETED,
            np.where(
                a & (u_out < q),
                OUT_COMPLETED,
                np.where(
                    a,
                    np.where(u_out < q + (1 - q) * 0.65, OUT_CANCELLED, OUT_NO_SHOW),
                    np.where(u_out < 0.6, OUT_CANCELLED, OUT_NO_SHOW),
                ),
            ),
        )
        alive[cand] = alive_c & ~dropped
        death[cand] = death_c
        rel = cand[idx]
        # (day, acquisitions first, rel) as one int64 key: one argsort, not a lexsort
        order = np.argsort((day * 2 + ~is_acq) * len(lat) + rel)
        order = order[keep[order]]
        return rel[order], day[order], lead[order], out[order], is_acq[order]

    def _slot_days(
        self, c: int, end: int, lam: np.ndarray, e: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Slots in [c, end) of the relationships with rates `lam` and message effects
        `e`: (index into them, day), grouped by round, not sorted.

        Slot days are a Bernoulli process per relationship (probability π_t on day t),
        drawn as geometric gaps at the period's highest π and thinned by π_t / π_max."""
        rng = self.rng
        m_max = 1.0 + np.maximum(np.where(e[1] > c, e[2], 0.0), np.where(e[3] < end, e[5], 0.0))
        pi_max = -np.expm1(-lam * m_max)
        # geometric gaps from c - 1 (rounds until every relationship passed `end`)
        s_idx: list[np.ndarray] = []
        s_day: list[np.ndarray] = []
        pos = np.full(len(lam), c - 1, dtype=np.int64)
        act = np.arange(len(lam))
        while len(act):
            pos_a = pos[act] + rng.geometric(pi_max[act])
            inside = pos_a < end
            act, pos_a = act[inside], pos_a[inside]
            pos[act] = pos_a
            s_idx.append(act)
            s_day.append(pos_a)
        h = np.concatenate(s_idx)
        t = np.concatenate(s_day)
        boosted = m_max[h] > 1.0
        if boosted.any():
            hb = h[boosted]
            pi_t = -np.expm1(-lam[hb] * _multiplier(e[:, hb], t[boosted]))
            keep = np.ones(len(h), dtype=bool)
            keep[boosted] = rng.random(len(hb)) * pi_max[hb] < pi_t
            h, t = h[keep], t[keep]
        return h, t

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
        # most relationships have no message effect (multiplier 1) on most days: the
        # factors are evaluated with the base π and corrected only where an effect acts
        pi_base = -np.expm1(-lam)
        prev = np.flatnonzero(e[2] > 0)
        cur = np.flatnonzero(e[5] > 0)
        log_n = np.zeros(len(live))
        log_cur = np.zeros(len(cur))
        for k in range(WINDOW_DAYS):
            m_prev = _multiplier(e[:, prev], c + k, False)
            pi = pi_base.copy()
            pi[prev] = -np.expm1(-lam[prev] * m_prev)
            log_n += _log_no_booking(pi, q, k)
            pi_cur = -np.expm1(-lam[cur] * _multiplier(e[:, cur], c + k))
            log_cur += _log_no_booking(pi_cur, q[cur], k) - _log_no_booking(pi[cur], q[cur], k)
        log_s = log_n.copy()
        log_s[cur] += log_cur
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
        while snaps:
            sn = snaps.pop(0)  # each snapshot is freed once its rows are built
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
                        "cutoff_day": np.full(len(sn.rels), c, dtype=np.int32),
                        "rel": sn.rels.astype(np.int32),
                        "probability": p,
                        "probability_without_message": pn,
                        "outcome": outcome,
                        "alive": sn.alive,
                        "visit_rate_per_day": lat.lam[sn.rels],
                        "known_bookings": n_known.astype(np.int16),
                        "planned_trigger": sn.trigger.astype(np.int8),
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
    n_people = int(lat.person.max()) + 1 if len(lat) else 0
    conv_rows = []
    for o in offers.itertuples():
        dist_mask = np.isin(lat.business, np.array(o.distributor_idx))
        cand_all = np.flatnonzero(dist_mask & lat.consent)
        # people already the publisher's customers, and those this offer already targeted
        excluded = np.zeros(n_people, dtype=bool)
        excluded[lat.person[lat.business == o.publisher_idx]] = True
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
            cand = cand[~excluded[lat.person[cand]]]
            day = c + rng.integers(0, PERIOD_DAYS, size=len(cand))
            ok = (day < o.valid_to_day) & (day < HISTORY_DAYS) & (day < lat.opt_out_day[cand])
            cand, day = cand[ok], day[ok]
            holdout = rng.random(len(cand)) < HOLDOUT_SHARE
            excluded[lat.person[cand]] = True
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
