"""Campaign results, their intervals and the monthly segment history, on a real `dbt build`.

Seeded raw rows (CRM customers and visits, trigger sends) go through every model up to
campaign_results, rfm_segment_migration and partner_offer_conversion_by_month; the
marts are compared with what the seed was designed to give, and every lift interval with
statsmodels' Newcombe interval (`confint_proportions_2indep(method='newcomb')`, the
reference implementation of Newcombe's hybrid score interval) — at 0%, 100%, tiny groups
and empty groups (NULL). The models' dbt unit tests (partner conversion per month) run in
the same build.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

import warehouse
from ingestion.identity import customer_ids
from revisit.settings import DEV_ID_KEY
from warehouse.config import DbtConfig
from warehouse.dbt_runner import run_dbt
from warehouse.load import load_batch, prepare_raw

pytestmark = pytest.mark.slow

AS_OF = "2026-06-01"
T0 = datetime(2025, 6, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Send:
    """One seeded message: its campaign, group, send time, and the revisit it caused
    (days after the send of the customer's next completed visit; None = none)."""

    trigger: str
    campaign: str | None
    holdout: bool
    planned_at: datetime
    revisit_after_days: float | None
    channel: str = "whatsapp"


def _at(month: int, day: int, hour: int = 10, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


SENDS = [
    # 100% of recipients revisit within 7 days, 0% of the holdout at all.
    *[Send("winback", "w-jan", False, _at(1, 10), 3) for _ in range(3)],
    *[Send("winback", "w-jan", True, _at(1, 10), None) for _ in range(2)],
    # A campaign across two months and two channels: pooled per month and in total.
    Send("reminder", "r-jan", False, _at(1, 30), 2),
    Send("reminder", "r-jan", False, _at(1, 31, 22), 20, channel="sms"),
    Send("reminder", "r-jan", False, _at(2, 1), None),
    Send("reminder", "r-jan", False, _at(2, 2), 40),
    Send("reminder", "r-jan", True, _at(1, 30), 10),
    Send("reminder", "r-jan", True, _at(2, 2), None),
    # No holdout at all: no lift, no interval.
    *[Send("birthday", "b-mar", False, _at(3, 5), 1) for _ in range(2)],
    # A trigger without a campaign id: 0% of one recipient against 100% of one holdout.
    Send("personal_offer", None, False, _at(4, 1), None),
    Send("personal_offer", None, True, _at(4, 1), 5),
    # Within 30 days of the as-of date: the window is still open.
    *[Send("winback", "w-may", False, _at(5, 20), 2) for _ in range(4)],
    Send("winback", "w-may", True, _at(5, 20), None),
]


def _phone(i: int) -> str:
    return f"+7916{i:07d}"


def _customer_id(phone: str) -> str:
    return customer_ids([phone], DEV_ID_KEY)[0]


def _seed() -> dict[str, pd.DataFrame]:
    """Raw tables: one customer per send (with a visit long before it, and the designed
    revisit), plus regulars whose visits move them between segments month by month."""
    customers, appointments, sends = [], [], []

    def visit(i: int, at: datetime, amount: int) -> None:
        appointments.append(
            {"business_id": "b1", "appointment_id": f"a{len(appointments)}",
             "source_customer_id": f"s{i}", "location_id": "l1", "service_id": "svc",
             "status": "completed", "scheduled_at": at, "amount": Decimal(amount),
             "currency": "RUB", "offer_id": None, "created_at": at, "updated_at": at}
        )  # fmt: skip

    def customer(i: int) -> str:
        phone = _phone(i)
        customers.append(
            {"business_id": "b1", "source_customer_id": f"s{i}",
             "customer_id": _customer_id(phone), "phone_e164": phone, "phone_raw": phone,
             "full_name": f"Client {i}", "birthday": None, "gender": "f",
             "consent_marketing": True, "created_at": T0, "updated_at": T0}
        )  # fmt: skip
        return phone

    for i, send in enumerate(SENDS):
        phone = customer(i)
        visit(i, T0 + timedelta(days=i), 1000)
        if send.revisit_after_days is not None:
            visit(i, send.planned_at + timedelta(days=send.revisit_after_days), 100 * (i + 1))
        sends.append(
            {"message_id": f"m{i}", "business_id": "b1", "phone_e164": phone,
             "customer_id": _customer_id(phone), "trigger": send.trigger,
             "campaign_id": send.campaign, "channel": send.channel, "holdout": send.holdout,
             "planned_at": send.planned_at, "offer_id": None,
             "provider_message_id": None if send.holdout else f"wamid.{i}"}
        )  # fmt: skip
    # Regulars: customer k visits every k-th week, so recency and frequency ranks
    # change from one month end to the next.
    for k in range(1, 13):
        i = 1000 + k
        customer(i)
        for week in range(0, 52, k):
            visit(i, T0 + timedelta(weeks=week, days=k), 500 + 50 * k)
    business = {
        "business_id": "b1", "name": "Salon", "kind": "salon", "country": "RU",
        "city": "Moscow", "timezone": "Europe/Moscow", "currency": "RUB", "updated_at": T0,
    }  # fmt: skip
    return {
        "crm_businesses": pd.DataFrame([business]),
        "crm_customers": pd.DataFrame(customers),
        "crm_appointments": pd.DataFrame(appointments),
        "message_sends": pd.DataFrame(sends),
    }


def _query(config: DbtConfig, sql: str) -> pd.DataFrame:
    with warehouse.connect(config.warehouse_dsn) as client:
        return client.query_df(sql)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbtConfig]:
    tmp = tmp_path_factory.mktemp("campaign-results")
    config = DbtConfig(warehouse_dsn=f"chdb://{tmp / 'warehouse'}", artifacts_dir=tmp / "dbt")
    with warehouse.connect(config.warehouse_dsn) as client:
        prepare_raw(client)
        for table, frame in _seed().items():
            load_batch(client, table, frame, batch_id=table, source="test")
    selection = (
        "+campaign_results +customer_rfm +rfm_segment_migration +partner_offer_conversion_by_month"
    )
    args = ["build", "--select", *selection.split(), "--vars", json.dumps({"as_of_date": AS_OF})]
    try:
        run_dbt(args, config, capture=True)
    except subprocess.CalledProcessError as failure:
        pytest.fail(f"dbt build failed:\n{failure.stdout[-6000:]}")
    yield config


def _newcombe(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float] | None:
    if n1 == 0 or n2 == 0:
        return None
    low, high = confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff")
    return float(low), float(high)


def _expected_rows() -> pd.DataFrame:
    """The seed pooled per campaign and per month, in pandas."""
    rows = []
    for s in SENDS:
        days = s.revisit_after_days
        rows.append(
            {"trigger": s.trigger, "campaign_id": s.campaign or "",
             "month": s.planned_at.date().replace(day=1), "send_date": s.planned_at.date(),
             "recipients": int(not s.holdout), "holdout_size": int(s.holdout),
             "revisited_7d": int(not s.holdout and days is not None and days <= 7),
             "holdout_revisited_7d": int(s.holdout and days is not None and days <= 7),
             "revisited_30d": int(not s.holdout and days is not None and days <= 30),
             "holdout_revisited_30d": int(s.holdout and days is not None and days <= 30)}
        )  # fmt: skip
    frame = pd.DataFrame(rows)
    counts = ["recipients", "holdout_size", "revisited_7d", "holdout_revisited_7d",
              "revisited_30d", "holdout_revisited_30d"]  # fmt: skip
    by_campaign = frame.groupby(["trigger", "campaign_id"]).agg(
        period_start=("send_date", "min"), **{c: (c, "sum") for c in counts}
    )
    by_campaign["grain"] = "campaign"
    by_month = frame.groupby(["trigger", "campaign_id", "month"])[counts].sum()
    by_month = by_month.reset_index("month").rename(columns={"month": "period_start"})
    by_month["grain"] = "month"
    both = pd.concat([by_campaign, by_month]).reset_index()
    return both.set_index(["trigger", "campaign_id", "grain", "period_start"]).sort_index()


def test_campaign_results_pool_the_sends_with_newcombe_intervals(built: DbtConfig) -> None:
    mart = _query(built, "SELECT * FROM marts.campaign_results")
    mart["period_start"] = pd.to_datetime(mart.period_start).dt.date
    mart = mart.set_index(["trigger", "campaign_id", "grain", "period_start"]).sort_index()
    expected = _expected_rows()
    assert list(mart.index) == list(expected.index)
    for column in expected.columns:
        assert (mart[column].astype(int) == expected[column]).all(), column

    checked = {"0% vs 100%": 0, "100% vs 0%": 0, "empty group": 0}
    for key, row in mart.iterrows():
        for days in (7, 30):
            x1, n1 = row[f"revisited_{days}d"], row.recipients
            x2, n2 = row[f"holdout_revisited_{days}d"], row.holdout_size
            reference = _newcombe(x1, n1, x2, n2)
            low, high = row[f"lift_ci95_low_{days}d"], row[f"lift_ci95_high_{days}d"]
            if reference is None:
                assert pd.isna(low) and pd.isna(high) and pd.isna(row[f"lift_{days}d"]), key
                checked["empty group"] += 1
                continue
            assert low == pytest.approx(reference[0], abs=1e-12), (key, days)
            assert high == pytest.approx(reference[1], abs=1e-12), (key, days)
            lift = x1 / n1 - x2 / n2
            assert row[f"lift_{days}d"] == pytest.approx(lift)
            assert low <= lift <= high and low < high, (key, days)
            assert row[f"incremental_revisits_{days}d"] == pytest.approx(lift * n1)
            if x1 == 0 and x2 == n2:
                checked["0% vs 100%"] += 1
            if x1 == n1 and x2 == 0:
                checked["100% vs 0%"] += 1
    assert all(checked.values()), checked

    winback = mart.loc[("winback", "w-jan", "campaign", date(2026, 1, 10))]
    assert winback.verdict_30d == "lift" and winback.lift_30d == 1.0
    # 100% against 0%: the interval is not the degenerate [1, 1] of the normal
    # approximation, and stays within [−1, 1].
    assert 0 < winback.lift_ci95_low_30d < 1 and winback.lift_ci95_high_30d == 1.0
    assert mart.loc[("birthday", "b-mar", "campaign", date(2026, 3, 5))].verdict_30d == (
        "no holdout"
    )
    assert mart.loc[("winback", "w-may", "month", date(2026, 5, 1))].verdict_30d == ("window open")
    reminder = mart.loc[("reminder", "r-jan", "campaign", date(2026, 1, 30))]
    assert list(reminder.channels) == ["sms", "whatsapp"]
    assert (reminder.period_end.date(), reminder.last_send_date.date()) == (date(2026, 2, 2),) * 2
    # Revenue: recipients' revisits within 30 days (the ones designed at 2 and 20 days).
    revenue = sum(100 * (i + 1) for i, s in enumerate(SENDS)
                  if s.campaign == "r-jan" and not s.holdout and s.revisit_after_days
                  and s.revisit_after_days <= 30)  # fmt: skip
    assert reminder.revisit_revenue_30d == Decimal(revenue)
    holdout_revenue = 100 * (SENDS.index(Send("reminder", "r-jan", True, _at(1, 30), 10)) + 1)
    assert reminder.incremental_revenue_30d == pytest.approx(
        revenue / 4 * 4 - holdout_revenue / 2 * 4
    )


def test_newcombe_macros_match_statsmodels_on_a_grid(built: DbtConfig) -> None:
    """The macros over every (x1, n1, x2, n2) with n up to 6 and a few large groups."""
    cases = [
        (x1, n1, x2, n2)
        for n1 in range(0, 7)
        for n2 in range(0, 7)
        for x1 in range(0, n1 + 1)
        for x2 in range(0, n2 + 1)
    ] + [(0, 1000, 0, 1000), (1000, 1000, 0, 1000), (37, 1000, 512, 1024), (1, 100000, 0, 7)]
    values = ", ".join(f"({i}, {x1}, {n1}, {x2}, {n2})" for i, (x1, n1, x2, n2) in enumerate(cases))
    inline = (
        "select i, {{ wilson_low('x1', 'n1') }} as wl, {{ wilson_high('x1', 'n1') }} as wh, "
        "{{ newcombe_low('x1', 'n1', 'x2', 'n2') }} as lo, "
        "{{ newcombe_high('x1', 'n1', 'x2', 'n2') }} as hi "
        f"from values('i UInt32, x1 UInt64, n1 UInt64, x2 UInt64, n2 UInt64', {values}) "
        "order by i"
    )
    compiled = run_dbt(["--quiet", "compile", "--inline", inline], built, capture=True).stdout
    result = _query(built, compiled)
    assert len(result) == len(cases)
    for (x1, n1, x2, n2), row in zip(cases, result.itertuples(), strict=True):
        reference = _newcombe(x1, n1, x2, n2)
        if reference is None:
            assert pd.isna(row.lo) and pd.isna(row.hi), (x1, n1, x2, n2)
        else:
            assert (row.lo, row.hi) == pytest.approx(reference, abs=1e-12), (x1, n1, x2, n2)
            assert -1 <= row.lo <= x1 / n1 - x2 / n2 <= row.hi <= 1
        if n1 == 0:
            assert pd.isna(row.wl) and pd.isna(row.wh)
        else:
            wilson = proportion_confint(x1, n1, alpha=0.05, method="wilson")
            assert (row.wl, row.wh) == pytest.approx(wilson, abs=1e-12), (x1, n1)
            assert row.wh - row.wl > 0  # never zero width, also at 0% and 100%


def test_segment_history_backfills_month_ends_and_migration_is_not_empty(built: DbtConfig) -> None:
    history = _query(
        built,
        "SELECT snapshot_date, is_month_end, business_id, customer_id, rfm_cell, segment, "
        "recency_days, frequency, monetary FROM marts.rfm_segment_history",
    )
    history["snapshot_date"] = pd.to_datetime(history.snapshot_date).dt.date
    dates = sorted(history.snapshot_date.unique())
    # Twelve month ends before the as-of date (the first visits are in June 2025), then
    # the as-of date itself.
    assert dates[-1] == date.fromisoformat(AS_OF)
    assert dates[:-1] == [
        (date(2025, 6 + m, 1) if m < 7 else date(2026, m - 6, 1)) - timedelta(days=1)
        for m in range(1, 13)
    ]
    assert history.groupby("snapshot_date").is_month_end.all().tolist() == [True] * 12 + [False]

    # The as-of snapshot is customer_rfm; a month-end snapshot is customer_rfm as of then.
    current = _query(built, "SELECT customer_id, rfm_cell, segment FROM marts.customer_rfm")
    as_of = history[history.snapshot_date == dates[-1]][["customer_id", "rfm_cell", "segment"]]
    pd.testing.assert_frame_equal(
        as_of.sort_values("customer_id", ignore_index=True),
        current.sort_values("customer_id", ignore_index=True),
    )
    # Every snapshot's measures, recomputed in pandas from the seeded visits: the
    # visits before the end of the snapshot day; frequency and monetary over 365 days.
    visits = _seed()["crm_appointments"].merge(
        _seed()["crm_customers"][["source_customer_id", "customer_id"]]
    )
    visits["day"] = visits.scheduled_at.dt.date
    for snapshot in dates:
        seen = visits[visits.day <= snapshot]
        recent = seen[seen.day > snapshot - timedelta(days=365)]
        expected = pd.DataFrame(
            {
                "recency_days": seen.groupby("customer_id")
                .day.max()
                .map(lambda d, s=snapshot: (s - d).days),
                "frequency": recent.groupby("customer_id").size(),
                "monetary": recent.groupby("customer_id").amount.sum(),
            }
        ).fillna({"frequency": 0, "monetary": Decimal(0)})
        got = history[history.snapshot_date == snapshot].set_index("customer_id")
        assert sorted(got.index) == sorted(expected.index), snapshot
        got = got.loc[expected.index]
        assert (got.recency_days.astype(int) == expected.recency_days).all(), snapshot
        assert (got.frequency.astype(int) == expected.frequency.astype(int)).all(), snapshot
        assert (got.monetary.map(Decimal) == expected.monetary.map(Decimal)).all(), snapshot

    migration = _query(
        built,
        "SELECT from_date, to_date, from_segment, to_segment, customers "
        "FROM marts.rfm_segment_migration",
    )
    migration["to_date"] = pd.to_datetime(migration.to_date).dt.date
    last = migration[migration.to_date == dates[-1]]
    assert last.customers.sum() == len(as_of)
    moved = migration[migration.from_segment != migration.to_segment]
    # The regulars' visit rhythms move customers between segments in most months.
    assert moved.to_date.nunique() >= 6 and moved.customers.sum() > 0
