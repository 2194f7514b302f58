"""What the marketer's report reads: one query per section over the selected businesses,
split per business in pandas (a query per business and section would cost seconds on a
demo with dozens of businesses).

A mart that is not built yet (a fresh warehouse, no ML run) reads as empty: its section
says "no data yet" instead of failing the whole report.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd
from clickhouse_connect.driver.client import Client

# (table, SQL) per section frame; {b} is the business filter, {start}/{end} the period's
# first and last day, {asof} the day after: a snapshot or scoring taken on the 1st (the
# demo's as-of date) describes the month that just ended.
SQL: dict[str, tuple[tuple[str, ...], str]] = {
    "grid": (
        ("marts.rfm_segment_history",),
        """SELECT business_id, rfm_cell, segment, count() AS customers,
                  sum(monetary) AS revenue, any(snapshot_date) AS snapshot
           FROM marts.rfm_segment_history
           WHERE business_id IN {b:Array(String)} AND snapshot_date = (
               SELECT max(snapshot_date) FROM marts.rfm_segment_history
               WHERE snapshot_date <= {asof:Date})
           GROUP BY business_id, rfm_cell, segment""",
    ),
    "trend": (
        ("marts.rfm_segment_history",),
        """SELECT business_id, snapshot_date, segment, count() AS customers
           FROM marts.rfm_segment_history
           WHERE business_id IN {b:Array(String)} AND is_month_end
             AND snapshot_date <= {end:Date}
             AND snapshot_date > addMonths({end:Date}, -12)
           GROUP BY business_id, snapshot_date, segment""",
    ),
    "migration": (
        ("marts.rfm_segment_migration",),
        """SELECT business_id, from_date, to_date, from_segment, to_segment, customers
           FROM marts.rfm_segment_migration
           WHERE business_id IN {b:Array(String)} AND to_date = (
               SELECT max(to_date) FROM marts.rfm_segment_migration
               WHERE to_date <= {end:Date})""",
    ),
    "campaigns": (
        ("marts.campaign_results",),
        """SELECT business_id, trigger, campaign_id, first_send_date, last_send_date,
                  recipients, sent, delivered, read, replied, holdout_size,
                  revisited_7d, revisited_30d, revisit_rate_30d, holdout_revisit_rate_30d,
                  lift_30d, lift_ci95_low_30d, lift_ci95_high_30d,
                  incremental_revisits_30d, incremental_revenue_30d, window_30d_complete,
                  verdict_30d
           FROM marts.campaign_results
           WHERE business_id IN {b:Array(String)} AND grain = 'campaign'
             AND first_send_date <= {end:Date} AND last_send_date >= {start:Date}
           ORDER BY business_id, trigger, first_send_date, campaign_id""",
    ),
    "dashboard": (
        ("marts.partner_dashboard",),
        """SELECT * FROM marts.partner_dashboard
           WHERE business_id IN {b:Array(String)}
             AND month <= {start:Date} AND month > addMonths({start:Date}, -12)
           ORDER BY business_id, month""",
    ),
    "offers": (
        ("marts.partner_offer_conversion_by_month",),
        """SELECT publisher_business_id AS business_id, 'publisher' AS role, offer_id,
                  distributor_business_id AS partner_id, exposed, redeemed, new_customers,
                  conversion_rate, conversion_rate_change_pct, reward_owed, currency
           FROM marts.partner_offer_conversion_by_month
           WHERE month = {start:Date} AND publisher_business_id IN {b:Array(String)}
           UNION ALL
           SELECT distributor_business_id, 'distributor', offer_id, publisher_business_id,
                  exposed, redeemed, new_customers, conversion_rate,
                  conversion_rate_change_pct, reward_owed, currency
           FROM marts.partner_offer_conversion_by_month
           WHERE month = {start:Date} AND distributor_business_id IN {b:Array(String)}""",
    ),
    "flows": (
        ("marts.cross_business_flows",),
        """SELECT from_business_id AS business_id, 'out' AS direction,
                  to_business_id AS partner_id, sum(customers) AS customers
           FROM marts.cross_business_flows
           WHERE month = {start:Date} AND from_business_id IN {b:Array(String)}
           GROUP BY business_id, partner_id
           UNION ALL
           SELECT to_business_id, 'in', from_business_id, sum(customers)
           FROM marts.cross_business_flows
           WHERE month = {start:Date} AND to_business_id IN {b:Array(String)}
           GROUP BY to_business_id, from_business_id""",
    ),
    # The latest scoring up to the period's end: its distribution.
    "scores": (
        ("ml.revisit_scores",),
        """SELECT business_id, p_revisit, decile
           FROM ml.revisit_scores
           WHERE business_id IN {b:Array(String)} AND scored_at = (
               SELECT max(scored_at) FROM ml.revisit_scores
               WHERE toDate(scored_at) <= {asof:Date})""",
    ),
    # The latest scoring whose horizon has passed by the last visit on record, against
    # what then happened: calibration and lift by decile need outcomes.
    "outcomes": (
        ("ml.revisit_scores", "marts.fct_visits"),
        """WITH horizon_end AS (SELECT max(visited_at) FROM marts.fct_visits),
           scoring AS (
               SELECT max(scored_at) FROM ml.revisit_scores
               WHERE scored_at + toIntervalDay(horizon_days) <= (SELECT * FROM horizon_end)
                 AND toDate(scored_at) <= {asof:Date})
           SELECT s.business_id AS business_id, s.p_revisit AS p_revisit,
                  s.decile AS decile, s.scored_at AS scored_at,
                  v.customer_id != '' AS revisited
           FROM ml.revisit_scores AS s
           LEFT JOIN (
               SELECT DISTINCT business_id, customer_id FROM marts.fct_visits
               WHERE visited_at > (SELECT * FROM scoring)
                 AND visited_at <= (SELECT * FROM scoring) + toIntervalDay(30)
                 AND business_id IN {b:Array(String)}
           ) AS v ON s.business_id = v.business_id AND s.customer_id = v.customer_id
           WHERE s.business_id IN {b:Array(String)} AND s.scored_at = (SELECT * FROM scoring)""",
    ),
}

BUSINESSES_SQL = """
SELECT business_id, name, country, currency, timezone FROM marts.dim_businesses
ORDER BY business_id
"""
LATEST_SQL = "SELECT max(snapshot_date) FROM marts.rfm_segment_history"


@dataclass
class BusinessData:
    """Every frame one business's report shows; empty frames mean "no data yet"."""

    business_id: str
    name: str
    country: str
    currency: str
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)

    def frame(self, key: str) -> pd.DataFrame:
        return self.frames.get(key, pd.DataFrame())


def exists(client: Client, table: str) -> bool:
    return bool(client.command(f"EXISTS TABLE {table}"))


def businesses(client: Client) -> pd.DataFrame:
    if not exists(client, "marts.dim_businesses"):
        return pd.DataFrame(columns=["business_id", "name", "country", "currency", "timezone"])
    frame = client.query_df(BUSINESSES_SQL)
    if not len(frame.columns):
        return pd.DataFrame(columns=["business_id", "name", "country", "currency", "timezone"])
    return frame


def latest_period(client: Client) -> dt.date:
    """The month the latest RFM snapshot closes (the as-of date is the day after the
    data's last day: a 1 November snapshot closes October); the previous month on an
    empty warehouse."""
    latest = dt.date.today()
    if exists(client, "marts.rfm_segment_history"):
        value = client.command(LATEST_SQL)
        if value and str(value) > "1970-01-01":
            latest = dt.date.fromisoformat(str(value)[:10])
    return (latest - dt.timedelta(days=1)).replace(day=1)


def period_bounds(month: dt.date) -> tuple[dt.date, dt.date]:
    """(first day, last day) of the month."""
    start = month.replace(day=1)
    following = (start + dt.timedelta(days=32)).replace(day=1)
    return start, following - dt.timedelta(days=1)


def load(client: Client, business_ids: list[str], month: dt.date) -> dict[str, dict]:
    """{section key: {business_id: frame}} for the businesses and the period."""
    start, end = period_bounds(month)
    parameters = {"b": business_ids, "start": start, "end": end,
                  "asof": end + dt.timedelta(days=1)}  # fmt: skip
    present = {}
    out: dict[str, dict] = {}
    for key, (tables, sql) in SQL.items():
        for table in tables:
            if table not in present:
                present[table] = exists(client, table)
        if not all(present[t] for t in tables):
            out[key] = {}
            continue
        frame = client.query_df(sql, parameters=parameters)
        out[key] = (
            {str(b): part.reset_index(drop=True) for b, part in frame.groupby("business_id")}
            if len(frame.columns) and len(frame)
            else {}
        )
    return out


def segments(client: Client) -> pd.DataFrame:
    """The segment seed (labels, descriptions, actions in en and ru), sorted."""
    if not exists(client, "marts.rfm_segments"):
        return pd.DataFrame(
            columns=["segment", "sort_order", "segment_label", "description",
                     "recommended_action", "segment_label_ru", "description_ru",
                     "recommended_action_ru"]
        )  # fmt: skip
    return client.query_df("SELECT * FROM marts.rfm_segments ORDER BY sort_order")
