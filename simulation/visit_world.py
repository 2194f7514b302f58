"""A self-contained synthetic visit world with a known true revisit probability.

Used by the ML tests and `benchmarks/bench_ml.py` when the full synthetic ecosystem
(`simulation.ecosystem`) is not at hand. It writes the ML input tables directly (the
marts of `ml.contract.input_tables()`, created from their dbt contracts), so it exercises
the one feature implementation.

The world, per customer (one business each):
- visits form a gamma renewal process: gaps ~ Gamma(shape k, mean mu) with k in {1,2,4,8}
  (k = 1 is memoryless, k = 8 is a very regular client) and mu drawn around the
  business kind's typical gap;
- after each visit the customer leaves for good with probability p;
- each visit is booked ahead with probability q, created Exp(mean 5 days) before it;
- cancellations, no-shows, messages, cashback events and birthdays are noise: they do
  not change the visit process (so the true probability below is exact).

True probability at cutoff c with a = c − last visit, horizon H, gap density f, cdf F:
if the next visit's booking is visible at c (created < c <= scheduled) the outcome is
certain; otherwise
    P = (1−p)[F(a+H) − F(a) − q·∫₀ᴴ f(a+u)e^{−u/ℓ}du] / (p + (1−p)[S(a) − q·∫₀^∞ f(a+u)e^{−u/ℓ}du]).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from clickhouse_connect.driver.client import Client
from scipy import stats

from ingestion.identity import customer_id as customer_id_of
from ml.contract import create_input_tables
from revisit.settings import DEV_ID_KEY

KINDS = {"salon": 35.0, "barbershop": 25.0, "clinic": 80.0, "restaurant": 18.0, "hookah": 12.0}
TICKETS = {"salon": 40.0, "barbershop": 20.0, "clinic": 120.0, "restaurant": 30.0, "hookah": 25.0}
LEAD_DAYS = 5.0
DAY_MS = 86_400_000


@dataclass
class SyntheticWorld:
    """Simulated customers and their full visit history (times in days since `start`)."""

    start: pd.Timestamp
    days: int
    business_id: np.ndarray  # per customer
    customer_id: np.ndarray
    kind: np.ndarray
    shape: np.ndarray
    mean_gap: np.ndarray
    churn: np.ndarray
    book_prob: np.ndarray
    visit_customer: np.ndarray  # per visit (including visits after the end, for truth)
    visit_time: np.ndarray
    visit_booked: np.ndarray
    visit_lead: np.ndarray
    tables: dict[str, pd.DataFrame]

    @property
    def end(self) -> pd.Timestamp:
        return self.start + pd.Timedelta(days=self.days)

    def true_probability(self, cutoff: dt.date | str, horizon_days: int = 30) -> pd.DataFrame:
        """(business_id, customer_id, p_true) for every customer with a visit before cutoff."""
        c = (pd.Timestamp(cutoff) - self.start.tz_localize(None)).days
        if c + horizon_days > self.days:
            raise ValueError("the label window of this cutoff runs past the simulated history")
        order = np.lexsort((self.visit_time, self.visit_customer))
        cust, time = self.visit_customer[order], self.visit_time[order]
        booked, lead = self.visit_booked[order], self.visit_lead[order]
        before = time < c
        n = len(self.customer_id)
        last_idx = np.full(n, -1)
        idx = np.nonzero(before)[0]
        last_idx[cust[idx]] = idx  # sorted by time within customer: the last write wins
        members = np.nonzero(last_idx >= 0)[0]
        li = last_idx[members]
        last = time[li]
        nxt = li + 1
        has_next = (nxt < len(cust)) & (cust[np.minimum(nxt, len(cust) - 1)] == members)
        nxt = np.minimum(nxt, len(cust) - 1)
        visible = has_next & booked[nxt] & (time[nxt] - lead[nxt] < c)
        p_true = _renewal_probability(
            a=c - last,
            horizon=float(horizon_days),
            shape=self.shape[members],
            mean_gap=self.mean_gap[members],
            churn=self.churn[members],
            book_prob=self.book_prob[members],
        )
        p_true = np.where(visible, (time[nxt] < c + horizon_days).astype(float), p_true)
        return pd.DataFrame(
            {
                "business_id": self.business_id[members],
                "customer_id": self.customer_id[members],
                "p_true": p_true,
            }
        )

    def load(self, client: Client) -> None:
        """Create the ML input tables and insert this world (not idempotent: a fresh warehouse)."""
        create_input_tables(client)
        for name, frame in self.tables.items():
            if len(frame):
                client.insert_df(name, frame)


def _renewal_probability(
    a: np.ndarray,
    horizon: float,
    shape: np.ndarray,
    mean_gap: np.ndarray,
    churn: np.ndarray,
    book_prob: np.ndarray,
    chunk: int = 50_000,
) -> np.ndarray:
    out = np.empty(len(a))
    upper = max(horizon, 15 * LEAD_DAYS)
    grid = np.linspace(0.0, upper, 601)
    in_h = grid <= horizon
    for lo in range(0, len(a), chunk):
        sl = slice(lo, lo + chunk)
        k, scale = shape[sl, None], (mean_gap[sl] / shape[sl])[:, None]
        dens = stats.gamma.pdf(a[sl, None] + grid[None, :], k, scale=scale)
        weighted = dens * np.exp(-grid / LEAD_DAYS)[None, :]
        i_h = np.trapezoid(weighted[:, in_h], grid[in_h], axis=1)
        i_inf = np.trapezoid(weighted, grid, axis=1)
        k1, s1 = shape[sl], mean_gap[sl] / shape[sl]
        cdf_a = stats.gamma.cdf(a[sl], k1, scale=s1)
        cdf_ah = stats.gamma.cdf(a[sl] + horizon, k1, scale=s1)
        p, q = churn[sl], book_prob[sl]
        num = (1 - p) * np.clip(cdf_ah - cdf_a - q * i_h, 0, None)
        den = p + (1 - p) * np.clip(1 - cdf_a - q * i_inf, 0, None)
        out[sl] = np.where(den > 0, num / np.maximum(den, 1e-300), 0.0)
    return np.clip(out, 0.0, 1.0)


def _phones(n: int) -> np.ndarray:
    """Fictional North American 555 numbers, one per customer."""
    return np.array([f"+1555{i:07d}" for i in range(n)], dtype=object)


def _ts(start: pd.Timestamp, days: np.ndarray) -> pd.Series:
    ms = start.value // 1_000_000 + np.round(np.asarray(days, dtype=float) * DAY_MS)
    return pd.Series(pd.to_datetime(ms.astype("int64"), unit="ms", utc=True))


def generate_world(
    n_customers: int = 20_000,
    n_businesses: int | None = None,
    start: str = "2023-01-01",
    days: int = 730,
    seed: int = 7,
    single_kind: str | None = None,
    id_key: bytes = DEV_ID_KEY,
) -> SyntheticWorld:
    """Simulate `n_customers` over `days` days from `start` (UTC). `id_key`: the
    customer-id key of the installation the world is loaded into (ids as ingestion
    computes them; default: the development key of a data directory without init)."""
    rng = np.random.default_rng(seed)
    start_ts = pd.Timestamp(start, tz="UTC")
    n_businesses = n_businesses or max(1, n_customers // 2_000)
    kinds = np.array(list(KINDS))
    business_ids = np.array([f"b{i:04d}" for i in range(n_businesses)], dtype=object)
    business_kind = (
        np.full(n_businesses, single_kind) if single_kind else rng.choice(kinds, n_businesses)
    )
    cust_business = rng.integers(0, n_businesses, n_customers)
    kind = business_kind[cust_business]
    base_gap = np.array([KINDS[k] for k in kind])
    shape = rng.choice([1.0, 2.0, 4.0, 8.0], n_customers, p=[0.25, 0.25, 0.3, 0.2])
    mean_gap = base_gap * rng.lognormal(0.0, 0.35, n_customers)
    churn = rng.beta(2.0, 10.0, n_customers)
    book_prob = np.where(rng.random(n_customers) < 0.5, 0.0, 0.7)
    ticket = np.array([TICKETS[k] for k in kind]) * rng.lognormal(0.0, 0.3, n_customers)
    phone = _phones(n_customers)
    customer_id = customer_id_of(pd.Series(phone, dtype=object), id_key).to_numpy(dtype=object)

    # Vectorised renewal simulation; continue past the end so the next visit is known.
    sim_end = days + 120
    first = rng.uniform(0, days * 0.95, n_customers)
    v_cust, v_time = [np.arange(n_customers)], [first]
    t, alive = first.copy(), np.ones(n_customers, bool)
    while True:
        alive &= rng.random(n_customers) >= churn
        gap = rng.gamma(shape, mean_gap / shape)
        t = t + gap
        alive &= t < sim_end
        if not alive.any():
            break
        idx = np.nonzero(alive)[0]
        v_cust.append(idx)
        v_time.append(t[idx])
    visit_customer = np.concatenate(v_cust)
    visit_time = np.concatenate(v_time)
    n_visits = len(visit_time)
    visit_booked = rng.random(n_visits) < book_prob[visit_customer]
    visit_lead = np.where(visit_booked, rng.exponential(LEAD_DAYS, n_visits), 0.0)
    created = visit_time - visit_lead
    # Extra appointments that never change the visit process: instant cancellations
    # (cancelled when created) and no-shows booked one hour ahead in business hours.
    noise_c = rng.random(n_visits) < 0.08
    noise_n = rng.random(n_visits) < 0.05
    cancel_t = np.floor(visit_time[noise_c] - rng.uniform(1, 20, noise_c.sum())) + 0.5
    noshow_t = np.floor(visit_time[noise_n] - rng.uniform(1, 20, noise_n.sum())) + 0.5

    keep = created < days  # what the CRM knows at the end of the history
    status = np.where(visit_time < days, "completed", "scheduled")
    appt_customer = np.concatenate(
        [visit_customer[keep], visit_customer[noise_c], visit_customer[noise_n]]
    )
    appt_sched = np.concatenate([visit_time[keep], cancel_t, noshow_t])
    appt_created = np.concatenate([created[keep], cancel_t - 3, noshow_t - 1 / 24])
    appt_updated = np.concatenate(
        [np.minimum(np.maximum(visit_time[keep], created[keep]), days - 1e-3), cancel_t - 3,
         noshow_t + 1 / 24]
    )  # fmt: skip
    appt_status = np.concatenate(
        [status[keep], np.full(noise_c.sum(), "cancelled"), np.full(noise_n.sum(), "no_show")]
    )
    in_hist = appt_created < days
    appt_customer, appt_sched = appt_customer[in_hist], appt_sched[in_hist]
    appt_created, appt_updated = appt_created[in_hist], appt_updated[in_hist]
    appt_status = appt_status[in_hist]
    n_appt = len(appt_sched)
    appt_id = np.char.mod("a%010d", np.arange(n_appt)).astype(object)
    appt_amount = np.round(ticket[appt_customer] * rng.lognormal(0, 0.2, n_appt), 2)
    biz = business_ids[cust_business]
    appointments = pd.DataFrame(
        {
            "appointment_key": biz[appt_customer] + ":" + appt_id,
            "business_id": biz[appt_customer],
            "appointment_id": appt_id,
            "customer_id": customer_id[appt_customer],
            "location_id": "loc1",
            "service_id": "svc1",
            "status": appt_status,
            "scheduled_at": _ts(start_ts, appt_sched),
            "amount": np.where(appt_status == "completed", appt_amount, np.nan),
            "currency": "EUR",
            "offer_id": None,
            "created_at": _ts(start_ts, appt_created),
            "updated_at": _ts(start_ts, appt_updated),
        }
    )
    completed = appointments[appointments["status"] == "completed"]
    visits = completed.rename(columns={"scheduled_at": "visited_at"})[
        [
            "appointment_key", "business_id", "appointment_id", "customer_id", "location_id",
            "service_id", "visited_at", "amount", "currency", "offer_id", "updated_at",
        ]
    ].reset_index(drop=True)  # fmt: skip

    birth = pd.Timestamp("1970-01-02") + pd.to_timedelta(rng.integers(0, 12_700, n_customers), "D")
    customers = pd.DataFrame(
        {
            "business_id": biz,
            "customer_id": customer_id,
            "phone_e164": phone,
            "full_name": "",
            "birthday": pd.Series(birth.date).where(rng.random(n_customers) > 0.1, None),
            "timezone": "UTC",
            "consent_marketing": rng.random(n_customers) < 0.8,
            "first_visit_at": _ts(start_ts, first),
            "last_visit_at": _ts(start_ts, first),
            "visits": 0,
            "revenue": 0.0,
            "business_kind": kind,
        }
    )

    # Messages: about one per 90 days of tenure, engagement per customer, no effect.
    n_msg = rng.poisson(np.clip(days - first, 0, None) / 90.0)
    m_cust = np.repeat(np.arange(n_customers), n_msg)
    m_time = rng.uniform(first[m_cust], days)
    n_m = len(m_cust)
    holdout = rng.random(n_m) < 0.1
    read_p = rng.beta(2, 2, n_customers)[m_cust]
    is_read = ~holdout & (rng.random(n_m) < read_p)
    replied = is_read & (rng.random(n_m) < 0.2)
    opted = ~holdout & (rng.random(n_m) < 0.01)

    def _maybe(mask: np.ndarray, offset: np.ndarray) -> pd.Series:
        return _ts(start_ts, m_time + offset).where(mask, pd.NaT)

    messages = pd.DataFrame(
        {
            "message_id": np.char.mod("m%010d", np.arange(n_m)).astype(object),
            "business_id": biz[m_cust],
            "customer_id": customer_id[m_cust],
            "trigger": "winback",
            "channel": "whatsapp",
            "holdout": holdout,
            "planned_at": _ts(start_ts, m_time),
            "sent_at": _maybe(~holdout, np.zeros(n_m)),
            "delivered_at": _maybe(~holdout, np.full(n_m, 0.001)),
            "read_at": _maybe(is_read, np.full(n_m, 0.05)),
            "replied_at": _maybe(replied, np.full(n_m, 0.1)),
            "failed_at": pd.Series(pd.NaT, index=range(n_m), dtype="datetime64[ms, UTC]"),
            "opted_out_at": _maybe(opted, np.full(n_m, 0.2)),
        }
    )

    # Cashback: a fifth of the people collect partner accruals now and then.
    n_led = rng.poisson(np.where(rng.random(n_customers) < 0.2, 4, 0))
    l_cust = np.repeat(np.arange(n_customers), n_led)
    n_l = len(l_cust)
    ledger = pd.DataFrame(
        {
            "entry_id": np.char.mod("e%010d", np.arange(n_l)).astype(object),
            "partner_id": "p1",
            "event_type": np.where(rng.random(n_l) < 0.8, "accrual", "redemption"),
            "customer_id": customer_id[l_cust],
            "phone_e164": phone[l_cust],
            "amount": np.round(rng.uniform(1, 10, n_l), 2),
            "currency": "EUR",
            "occurred_at": _ts(start_ts, rng.uniform(0, days, n_l)),
            "offer_id": None,
        }
    )
    return SyntheticWorld(
        start=start_ts,
        days=days,
        business_id=biz,
        customer_id=customer_id,
        kind=kind,
        shape=shape,
        mean_gap=mean_gap,
        churn=churn,
        book_prob=book_prob,
        visit_customer=visit_customer,
        visit_time=visit_time,
        visit_booked=visit_booked,
        visit_lead=visit_lead,
        tables={
            "marts.fct_visits": visits,
            "marts.fct_appointments": appointments,
            "marts.dim_customers": customers,
            "marts.fct_message_sends": messages,
            "marts.cashback_ledger": ledger,
        },
    )
