"""Point-in-time features of a (business, customer) pair at a cutoff, computed in ClickHouse.

One feature implementation serves training, evaluation, scoring and `revisit ml evaluate`
(which loads a bare transaction log into the same tables).

The SQL reads marts only (the dbt exposure `revisit_model` lists them: `marts.fct_visits`,
`marts.fct_appointments`, `marts.fct_appointment_history`, `marts.fct_message_sends`,
`marts.cashback_ledger`, `marts.dim_customers`, `marts.customer_consent_history`; their
shapes are the models' dbt contracts).

Population at cutoff C: every (business_id, customer_id) with at least one completed visit
with `visited_at < C`. Point-in-time rules — nothing at or after C is visible:
- visits: `marts.fct_visits` rows with `visited_at < C` (a visit is placed by its scheduled
  time; an appointment scheduled at/after C is not a visit at C, whatever its status now);
- appointments (`marts.fct_appointments`, the current state, and
  `marts.fct_appointment_history`, every version recorded since the history began): only
  those created before C; their status and scheduled time are those of the latest
  version updated before C, so a reschedule, cancellation or deletion after C is
  invisible. With no version before C the status is "scheduled" and the time the
  earliest known one. An upcoming booking is `created_at < C <= scheduled_at` and not
  cancelled before C. Limitation: a version the CRM made and replaced between two loads
  was never recorded (nor an appointment booked before the history began and changed
  after C before its first load): then the earliest known version stands for it;
- messages (`marts.fct_message_sends`): sent before C; read, reply and opt-out count only
  when they happened before C;
- cashback ledger: events before C (per person: `customer_id` is the phone hash);
- dim_customers: birthday and business kind (slow-changing attributes); marketing consent
  from `marts.customer_consent_history`: the value of the latest version before C,
  unknown (NaN) when every recorded version is newer; today's value only where there is
  no consent history at all (a warehouse not loaded from the CRM);
- BG/NBD: P(alive) and expected visits in 30 days, from BG/NBD fits on each cutoff's own
  population (once on completed visits, once on appointment days of any outcome), so they
  too depend on the history before C only (`add_bgnbd_features`).

The label (`revisited`) is 1 when the pair has a completed visit in [C, C + H days).
Every feature is a non-null Float64 (NaN = not defined, e.g. gap statistics of a
customer with one visit day) except the categorical `business_kind` and `rfm_cell`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd
from clickhouse_connect.driver.client import Client

from ml import bgnbd

ID_COLUMNS = ["cutoff", "business_id", "customer_id"]
# Customers per BG/NBD feature fit: four population parameters are pinned down by a
# sample this size, and the fits then cost little next to the feature SQL.
BGNBD_FEATURE_FIT_ROWS = 10_000
LABEL = "revisited"
# BG/NBD summary (repeat-visit days x, day of last repeat t_x, age T) for the baseline.
BGNBD_COLUMNS = ["bg_x", "bg_t_x", "bg_T"]
# The same over appointment days of any outcome: a booking, cancelled or missed, also
# shows the customer is still around (input of the appointment-based BG/NBD features).
SLOT_COLUMNS = ["bg_slot_x", "bg_slot_t_x", "bg_slot_T"]
CATEGORICAL_FEATURES = ["business_kind", "rfm_cell"]
NUMERIC_FEATURES = [
    "days_since_last_visit",
    "tenure_days",
    "visits_all",
    "visits_30",
    "visits_90",
    "visits_180",
    "visits_365",
    "visit_days_all",
    "visits_trend_180",
    "spend_90",
    "spend_365",
    "spend_all",
    "avg_ticket",
    "offer_visits_365",
    "locations",
    "gap_mean",
    "gap_std",
    "gap_cv",
    "last_gap",
    "recency_gap_ratio",
    "recency_gap_z",
    "cancellations_365",
    "no_shows_365",
    "upcoming_booking",
    "days_to_upcoming",
    "advance_booking_share",
    "upcoming_bookings",
    "appointments_all",
    "appointments_365",
    "days_since_last_appointment",
    "days_since_last_booking",
    "visits_per_30d",
    "appointments_per_30d",
    "overdue_appointments",
    "overdue_visits",
    "completed_share",
    "booked_since_last_visit",
    "messages_180",
    "read_rate_180",
    "reply_rate_180",
    "opted_out",
    "days_since_last_message",
    "cashback_accruals_365",
    "cashback_accrued_365",
    "cashback_redemptions_365",
    "partner_actions_365",
    "cashback_balance",
    "days_since_partner_event",
    "days_to_birthday",
    "birthday_within_30",
    "consent_marketing",
    "r_score",
    "f_score",
    "m_score",
]
# Computed in Python from BGNBD_COLUMNS (see `add_bgnbd_features`), not by the SQL.
BGNBD_FEATURES = [
    "bgnbd_p_alive",
    "bgnbd_expected_30d",
    "bgnbd_appointments_p_alive",
    "bgnbd_appointments_expected_30d",
]
NUMERIC_FEATURES += BGNBD_FEATURES
FEATURES = CATEGORICAL_FEATURES + NUMERIC_FEATURES
# Added after the fetch (`add_rfm_scores`, `add_bgnbd_features`), not by the SQL.
PYTHON_FEATURES = ["r_score", "f_score", "m_score", "rfm_cell", *BGNBD_FEATURES]

# {cutoff:DateTime64(3, 'UTC')} and {horizon:UInt32} are server-side query parameters.
FEATURE_SQL = """
WITH
visit_agg AS (
    SELECT
        business_id,
        customer_id,
        max(visited_at) AS last_visit_at,
        min(visited_at) AS first_visit_at,
        count() AS n_all,
        countIf(visited_at >= {cutoff:DateTime64(3, 'UTC')} - INTERVAL 30 DAY) AS n_30,
        countIf(visited_at >= {cutoff:DateTime64(3, 'UTC')} - INTERVAL 90 DAY) AS n_90,
        countIf(visited_at >= {cutoff:DateTime64(3, 'UTC')} - INTERVAL 180 DAY) AS n_180,
        countIf(visited_at >= {cutoff:DateTime64(3, 'UTC')} - INTERVAL 365 DAY) AS n_365,
        countIf(visited_at >= {cutoff:DateTime64(3, 'UTC')} - INTERVAL 360 DAY
            AND visited_at < {cutoff:DateTime64(3, 'UTC')} - INTERVAL 180 DAY) AS n_prev_180,
        sumIf(toFloat64(amount),
            visited_at >= {cutoff:DateTime64(3, 'UTC')} - INTERVAL 90 DAY) AS s_90,
        sumIf(toFloat64(amount),
            visited_at >= {cutoff:DateTime64(3, 'UTC')} - INTERVAL 365 DAY) AS s_365,
        sum(toFloat64(amount)) AS s_all,
        countIf(offer_id IS NOT NULL
            AND visited_at >= {cutoff:DateTime64(3, 'UTC')} - INTERVAL 365 DAY) AS n_offer_365,
        uniqExact(location_id) AS n_locations,
        -- Sorted distinct visit days (sorting a plain array beats a hash set per group).
        arrayDistinct(arraySort(groupArray(toInt64(toRelativeDayNum(visited_at))))) AS days
    FROM marts.fct_visits FINAL
    WHERE visited_at < {cutoff:DateTime64(3, 'UTC')}
    GROUP BY business_id, customer_id
),
visits AS (
    SELECT
        *,
        arrayPopFront(arrayDifference(days)) AS gaps,
        if(length(gaps) > 0, arrayAvg(gaps), nan) AS g_mean,
        if(length(gaps) > 0,
            sqrt(arrayAvg(arrayMap(g -> (g - g_mean) * (g - g_mean), gaps))), nan) AS g_std,
        dateDiff('second', last_visit_at, {cutoff:DateTime64(3, 'UTC')}) / 86400. AS recency
    FROM visit_agg
),
appointment_versions AS (
    -- The current state and every recorded earlier version (see the module docstring).
    SELECT appointment_key, business_id, customer_id, status, scheduled_at, created_at,
        updated_at, false AS is_deleted
    FROM marts.fct_appointments
    WHERE created_at < {cutoff:DateTime64(3, 'UTC')}
    UNION ALL
    SELECT appointment_key, business_id, customer_id, status, scheduled_at, created_at,
        valid_from AS updated_at, is_deleted
    FROM marts.fct_appointment_history
    WHERE created_at < {cutoff:DateTime64(3, 'UTC')}
),
appointment_asof AS (
    -- The state of each appointment as of the cutoff (see the module docstring).
    SELECT
        any(business_id) AS business_id,
        any(customer_id) AS customer_id,
        min(created_at) AS created,
        countIf(updated_at < {cutoff:DateTime64(3, 'UTC')}) > 0 AS known_before,
        if(known_before,
            argMaxIf(status, updated_at, updated_at < {cutoff:DateTime64(3, 'UTC')}),
            'scheduled') AS status_asof,
        if(known_before,
            argMaxIf(scheduled_at, updated_at, updated_at < {cutoff:DateTime64(3, 'UTC')}),
            argMin(scheduled_at, updated_at)) AS scheduled_asof,
        known_before
            AND argMaxIf(is_deleted, updated_at, updated_at < {cutoff:DateTime64(3, 'UTC')})
            AS deleted_asof
    FROM appointment_versions
    GROUP BY appointment_key
    HAVING NOT deleted_asof
),
appointments AS (
    SELECT
        business_id,
        customer_id,
        countIf(status_asof = 'cancelled'
            AND scheduled_asof >= {cutoff:DateTime64(3, 'UTC')} - INTERVAL 365 DAY) AS n_cancel,
        countIf(status_asof = 'no_show'
            AND scheduled_asof >= {cutoff:DateTime64(3, 'UTC')} - INTERVAL 365 DAY) AS n_no_show,
        countIf(scheduled_asof >= {cutoff:DateTime64(3, 'UTC')}
            AND status_asof != 'cancelled') AS n_upcoming,
        minIf(scheduled_asof, scheduled_asof >= {cutoff:DateTime64(3, 'UTC')}
            AND status_asof != 'cancelled') AS next_booking_at,
        avgIf(dateDiff('second', created, scheduled_asof) >= 86400,
            scheduled_asof < {cutoff:DateTime64(3, 'UTC')}
            AND status_asof IN ('completed', 'scheduled')) AS advance_share,
        -- Every past appointment, whatever its outcome, shows the customer was still
        -- coming: cancellations and no-shows are evidence of activity too.
        countIf(scheduled_asof < {cutoff:DateTime64(3, 'UTC')}) AS n_slots,
        countIf(scheduled_asof < {cutoff:DateTime64(3, 'UTC')}
            AND scheduled_asof >= {cutoff:DateTime64(3, 'UTC')} - INTERVAL 365 DAY) AS n_slots_365,
        minIf(scheduled_asof, scheduled_asof < {cutoff:DateTime64(3, 'UTC')}) AS first_slot_at,
        maxIf(scheduled_asof, scheduled_asof < {cutoff:DateTime64(3, 'UTC')}) AS last_slot_at,
        max(created) AS last_booked_at,
        uniqExactIf(toRelativeDayNum(scheduled_asof),
            scheduled_asof < {cutoff:DateTime64(3, 'UTC')}) AS n_slot_days
    FROM appointment_asof
    GROUP BY business_id, customer_id
),
messages AS (
    SELECT
        business_id,
        customer_id,
        countIf(sent_at >= {cutoff:DateTime64(3, 'UTC')} - INTERVAL 180 DAY) AS n_msg_180,
        countIf(sent_at >= {cutoff:DateTime64(3, 'UTC')} - INTERVAL 180 DAY
            AND read_at < {cutoff:DateTime64(3, 'UTC')}) AS n_read_180,
        countIf(sent_at >= {cutoff:DateTime64(3, 'UTC')} - INTERVAL 180 DAY
            AND replied_at < {cutoff:DateTime64(3, 'UTC')}) AS n_reply_180,
        countIf(opted_out_at < {cutoff:DateTime64(3, 'UTC')}) > 0 AS has_opted_out,
        dateDiff('second', max(assumeNotNull(sent_at)), {cutoff:DateTime64(3, 'UTC')})
            / 86400. AS msg_recency
    FROM marts.fct_message_sends
    WHERE NOT holdout AND sent_at < {cutoff:DateTime64(3, 'UTC')}
    GROUP BY business_id, customer_id
),
ledger AS (
    SELECT
        customer_id,
        countIf(event_type = 'accrual'
            AND occurred_at >= {cutoff:DateTime64(3, 'UTC')} - INTERVAL 365 DAY) AS n_accrual,
        sumIf(toFloat64(amount), event_type = 'accrual'
            AND occurred_at >= {cutoff:DateTime64(3, 'UTC')} - INTERVAL 365 DAY) AS s_accrual,
        countIf(event_type = 'redemption'
            AND occurred_at >= {cutoff:DateTime64(3, 'UTC')} - INTERVAL 365 DAY) AS n_redeem,
        countIf(event_type = 'target_action'
            AND occurred_at >= {cutoff:DateTime64(3, 'UTC')} - INTERVAL 365 DAY) AS n_action,
        sum(toFloat64(amount)) AS balance,
        dateDiff('second', max(occurred_at), {cutoff:DateTime64(3, 'UTC')})
            / 86400. AS ledger_recency
    FROM marts.cashback_ledger
    WHERE occurred_at < {cutoff:DateTime64(3, 'UTC')}
    GROUP BY customer_id
),
consent_asof AS (
    -- Consent as the CRM had it before the cutoff; NULL (unknown) when every recorded
    -- version is newer (see the module docstring).
    SELECT
        business_id,
        customer_id,
        argMaxIf(consent_marketing, valid_from,
            valid_from < {cutoff:DateTime64(3, 'UTC')} AND NOT is_deleted) AS consent_value,
        countIf(valid_from < {cutoff:DateTime64(3, 'UTC')} AND NOT is_deleted) > 0 AS known
    FROM marts.customer_consent_history
    GROUP BY business_id, customer_id
),
customers AS (
    SELECT
        d.business_id AS business_id,
        d.customer_id AS customer_id,
        any(d.birthday) AS birthday,
        any(d.business_kind) AS kind,
        -- Without any consent history (a warehouse not built from CRM loads, e.g. a bare
        -- transaction log) today's value is all there is.
        if(any(h.customer_id) = '', toNullable(any(d.consent_marketing)),
            if(any(h.known), toNullable(any(h.consent_value)), NULL)) AS consent
    FROM marts.dim_customers AS d
    LEFT JOIN consent_asof AS h
        ON h.business_id = d.business_id AND h.customer_id = d.customer_id
    GROUP BY d.business_id, d.customer_id
),
labels AS (
    SELECT business_id, customer_id, 1 AS hit
    FROM marts.fct_visits FINAL
    WHERE visited_at >= {cutoff:DateTime64(3, 'UTC')}
        AND visited_at < {cutoff:DateTime64(3, 'UTC')} + toIntervalDay({horizon:UInt32})
    GROUP BY business_id, customer_id
),
joined AS (
    SELECT
        v.business_id AS business_id,
        v.customer_id AS customer_id,
        v.recency AS days_since_last_visit,
        dateDiff('second', v.first_visit_at, {cutoff:DateTime64(3, 'UTC')}) / 86400.
            AS tenure_days,
        toFloat64(v.n_all) AS visits_all,
        toFloat64(v.n_30) AS visits_30,
        toFloat64(v.n_90) AS visits_90,
        toFloat64(v.n_180) AS visits_180,
        toFloat64(v.n_365) AS visits_365,
        toFloat64(length(v.days)) AS visit_days_all,
        toFloat64(v.n_180) - toFloat64(v.n_prev_180) AS visits_trend_180,
        v.s_90 AS spend_90,
        v.s_365 AS spend_365,
        v.s_all AS spend_all,
        v.s_all / v.n_all AS avg_ticket,
        toFloat64(v.n_offer_365) AS offer_visits_365,
        toFloat64(v.n_locations) AS locations,
        v.g_mean AS gap_mean,
        v.g_std AS gap_std,
        v.g_std / greatest(v.g_mean, 1.) AS gap_cv,
        if(length(v.gaps) > 0, toFloat64(v.gaps[-1]), nan) AS last_gap,
        v.recency / if(isNaN(v.g_mean), nan, greatest(v.g_mean, 1.)) AS recency_gap_ratio,
        (v.recency - v.g_mean) / greatest(v.g_std, 1.) AS recency_gap_z,
        toFloat64(ifNull(a.n_cancel, 0)) AS cancellations_365,
        toFloat64(ifNull(a.n_no_show, 0)) AS no_shows_365,
        toFloat64(ifNull(a.n_upcoming, 0) > 0) AS upcoming_booking,
        if(ifNull(a.n_upcoming, 0) > 0,
            dateDiff('second', {cutoff:DateTime64(3, 'UTC')}, assumeNotNull(a.next_booking_at))
                / 86400.,
            nan) AS days_to_upcoming,
        ifNull(toFloat64(a.advance_share), nan) AS advance_booking_share,
        toFloat64(ifNull(a.n_upcoming, 0)) AS upcoming_bookings,
        toFloat64(ifNull(a.n_slots, 0)) AS appointments_all,
        toFloat64(ifNull(a.n_slots_365, 0)) AS appointments_365,
        if(ifNull(a.n_slots, 0) > 0,
            dateDiff('second', assumeNotNull(a.last_slot_at), {cutoff:DateTime64(3, 'UTC')})
                / 86400.,
            nan) AS days_since_last_appointment,
        if(a.last_booked_at IS NULL, nan,
            dateDiff('second', assumeNotNull(a.last_booked_at), {cutoff:DateTime64(3, 'UTC')})
                / 86400.) AS days_since_last_booking,
        -- Rates per 30 days over at least 30 days of history (a two-day-old customer with
        -- two visits is not one who comes daily).
        30. * visits_all / greatest(tenure_days, 30.) AS visits_per_30d,
        if(ifNull(a.n_slots, 0) > 0,
            30. * a.n_slots / greatest(dateDiff('second', assumeNotNull(a.first_slot_at),
                {cutoff:DateTime64(3, 'UTC')}) / 86400., 30.),
            nan) AS appointments_per_30d,
        -- Appointments the customer's own rate predicts during the silence since the last
        -- one: a hazard-like "overdue" measure.
        appointments_per_30d / 30. * days_since_last_appointment AS overdue_appointments,
        visits_per_30d / 30. * days_since_last_visit AS overdue_visits,
        if(ifNull(a.n_slots, 0) > 0, visits_all / a.n_slots, nan) AS completed_share,
        -- A booking made after the last visit: the customer was still around after it.
        toFloat64(ifNull(a.last_booked_at > v.last_visit_at, 0)) AS booked_since_last_visit,
        toFloat64(ifNull(m.n_msg_180, 0)) AS messages_180,
        if(ifNull(m.n_msg_180, 0) > 0, m.n_read_180 / m.n_msg_180, nan) AS read_rate_180,
        if(ifNull(m.n_msg_180, 0) > 0, m.n_reply_180 / m.n_msg_180, nan) AS reply_rate_180,
        toFloat64(ifNull(m.has_opted_out, 0)) AS opted_out,
        ifNull(m.msg_recency, nan) AS days_since_last_message,
        toFloat64(ifNull(l.n_accrual, 0)) AS cashback_accruals_365,
        ifNull(l.s_accrual, 0.) AS cashback_accrued_365,
        toFloat64(ifNull(l.n_redeem, 0)) AS cashback_redemptions_365,
        toFloat64(ifNull(l.n_action, 0)) AS partner_actions_365,
        ifNull(l.balance, 0.) AS cashback_balance,
        ifNull(l.ledger_recency, nan) AS days_since_partner_event,
        toDate({cutoff:DateTime64(3, 'UTC')}) AS cutoff_day,
        if(c.birthday IS NULL, nan, toFloat64(dateDiff('day', cutoff_day,
            if(addYears(assumeNotNull(c.birthday),
                    toYear(cutoff_day) - toYear(assumeNotNull(c.birthday))) >= cutoff_day,
                addYears(assumeNotNull(c.birthday),
                    toYear(cutoff_day) - toYear(assumeNotNull(c.birthday))),
                addYears(assumeNotNull(c.birthday),
                    toYear(cutoff_day) - toYear(assumeNotNull(c.birthday)) + 1)))))
            AS days_to_birthday,
        if(isNaN(days_to_birthday), nan, toFloat64(days_to_birthday <= 30))
            AS birthday_within_30,
        ifNull(toFloat64(c.consent), nan) AS consent_marketing,
        ifNull(nullIf(toString(c.kind), ''), 'unknown') AS business_kind,
        toFloat64(length(v.days) - 1) AS bg_x,
        toFloat64(v.days[-1] - v.days[1]) AS bg_t_x,
        toFloat64(toRelativeDayNum({cutoff:DateTime64(3, 'UTC')}) - v.days[1]) AS bg_T,
        -- The same summary over appointment days of any outcome (NaN: no appointments).
        if(ifNull(a.n_slots, 0) > 0, toFloat64(a.n_slot_days - 1), nan) AS bg_slot_x,
        if(ifNull(a.n_slots, 0) > 0, toFloat64(toRelativeDayNum(assumeNotNull(a.last_slot_at))
            - toRelativeDayNum(assumeNotNull(a.first_slot_at))), nan) AS bg_slot_t_x,
        if(ifNull(a.n_slots, 0) > 0, toFloat64(toRelativeDayNum({cutoff:DateTime64(3, 'UTC')})
            - toRelativeDayNum(assumeNotNull(a.first_slot_at))), nan) AS bg_slot_T,
        toUInt8(ifNull(lb.hit, 0)) AS revisited
    FROM visits AS v
    LEFT JOIN appointments AS a
        ON v.business_id = a.business_id AND v.customer_id = a.customer_id
    LEFT JOIN messages AS m ON v.business_id = m.business_id AND v.customer_id = m.customer_id
    LEFT JOIN ledger AS l ON v.customer_id = l.customer_id
    LEFT JOIN customers AS c ON v.business_id = c.business_id AND v.customer_id = c.customer_id
    LEFT JOIN labels AS lb ON v.business_id = lb.business_id AND v.customer_id = lb.customer_id
)
SELECT
    {cutoff:DateTime64(3, 'UTC')} AS cutoff,
    * EXCEPT (cutoff_day)
FROM joined
ORDER BY business_id, customer_id
SETTINGS join_use_nulls = 1
"""


def _without_labels(sql: str) -> str:
    """FEATURE_SQL without the label: no second pass over the visits after the cutoff and
    no join for it (scoring needs no label; `revisited` is 0)."""
    labels = sql[sql.index("labels AS (") : sql.index("joined AS (")]
    parts = [
        (labels, ""),
        ("toUInt8(ifNull(lb.hit, 0)) AS revisited", "toUInt8(0) AS revisited"),
        (
            "    LEFT JOIN labels AS lb "
            "ON v.business_id = lb.business_id AND v.customer_id = lb.customer_id\n",
            "",
        ),
    ]
    for old, new in parts:
        if sql.count(old) != 1:
            raise AssertionError(f"FEATURE_SQL changed: {old[:40]!r} not found once")
        sql = sql.replace(old, new)
    return sql


FEATURE_SQL_WITHOUT_LABEL = _without_labels(FEATURE_SQL)


def as_cutoff(value: dt.date | dt.datetime | str | pd.Timestamp) -> pd.Timestamp:
    """A cutoff as a UTC timestamp; a date means 00:00 UTC of that day."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def build_features(
    client: Client,
    cutoffs: Sequence[dt.date | dt.datetime | str],
    horizon_days: int = 30,
    *,
    labels: bool = True,
) -> pd.DataFrame:
    """Features (and the label for `horizon_days`) for every cutoff, stacked.

    Returns one row per (cutoff, business_id, customer_id): ID_COLUMNS, FEATURES,
    BGNBD_COLUMNS, SLOT_COLUMNS and LABEL. Rows of a cutoff whose label window reaches past the data
    simply have `revisited = 0` where nothing is known yet — callers choose cutoffs whose
    window is complete when they need labels. `labels=False` (scoring) skips the label:
    `revisited` is 0 everywhere and every feature is the same.
    """
    sql = FEATURE_SQL if labels else FEATURE_SQL_WITHOUT_LABEL
    frames = []
    for cutoff in cutoffs:
        ts = as_cutoff(cutoff)
        # Arrow rather than query_df: columnar end to end, no per-value Python parsing.
        frame = client.query_arrow(
            sql,
            parameters={"cutoff": ts.to_pydatetime(), "horizon": int(horizon_days)},
            use_strings=True,
        ).to_pandas()
        frame["cutoff"] = ts
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if frame.empty:
        return pd.DataFrame(columns=ID_COLUMNS + FEATURES + BGNBD_COLUMNS + SLOT_COLUMNS + [LABEL])
    for column in NUMERIC_FEATURES + BGNBD_COLUMNS + SLOT_COLUMNS:
        if column not in PYTHON_FEATURES:
            frame[column] = frame[column].astype(np.float64)
    for column in [*CATEGORICAL_FEATURES, "business_id", "customer_id"]:
        if column not in PYTHON_FEATURES:
            frame[column] = frame[column].astype(str)
    frame[LABEL] = frame[LABEL].astype(np.int8)
    add_rfm_scores(frame)
    add_bgnbd_features(frame)
    return frame[ID_COLUMNS + FEATURES + BGNBD_COLUMNS + SLOT_COLUMNS + [LABEL]]


# RFM score column → (feature it ranks, best when the feature is high).
RFM_SCORES = {
    "r_score": ("days_since_last_visit", False),
    "f_score": ("visits_365", True),
    "m_score": ("spend_365", True),
}


def add_rfm_scores(frame: pd.DataFrame) -> None:
    """RFM terciles per business and cutoff (3 = best) and `rfm_cell`, in place.

    Rank-based so that ties share a tercile: 1 + ⌊3·(rank − 1) / n⌋, rank as SQL `rank()`
    (ties take the lowest rank) among the n customers of the business. Computed here, after
    the fetch: as window functions in the feature query they sorted the wide feature rows
    three times, single-threaded, and doubled its time (200k customers: 3 s → 6 s).
    """
    groups = frame.groupby(["cutoff", "business_id"], sort=False)
    size = groups["customer_id"].transform("size").to_numpy(float)
    for score, (column, high_is_best) in RFM_SCORES.items():
        rank = groups[column].rank(method="min", ascending=high_is_best).to_numpy(float)
        frame[score] = 1.0 + np.floor(3.0 * (rank - 1.0) / size)
    frame["rfm_cell"] = (
        frame["r_score"].astype(np.int8).astype(str)
        + frame["f_score"].astype(np.int8).astype(str)
        + frame["m_score"].astype(np.int8).astype(str)
    )


def add_bgnbd_features(frame: pd.DataFrame) -> None:
    """BG/NBD P(alive) and expected visits in 30 days per row, in place.

    Two fits per cutoff on that cutoff's population: one on completed visits
    (BGNBD_COLUMNS) and one on appointment days of any outcome (SLOT_COLUMNS, customers
    with appointments only). A fit uses only the history before its cutoff, so the
    features stay point-in-time, and needs no labels. Each cutoff's fit starts from the
    previous cutoff's parameters, which keeps the fits few and quick; business kind and
    the rest are left to the model.
    """
    for name in BGNBD_FEATURES:
        frame[name] = np.nan
    if frame.empty:
        return
    cutoff_rows = frame.groupby("cutoff", sort=True).indices.values()
    for columns, prefix in ((BGNBD_COLUMNS, "bgnbd"), (SLOT_COLUMNS, "bgnbd_appointments")):
        x, t_x, T = (frame[c].to_numpy(float) for c in columns)
        p_alive = np.full(len(frame), np.nan)
        expected = np.full(len(frame), np.nan)
        previous = None
        for idx in cutoff_rows:
            idx = idx[np.isfinite(x[idx])]
            if not len(idx):
                continue
            previous = bgnbd.fit_bgnbd(
                x[idx], t_x[idx], T[idx], max_customers=BGNBD_FEATURE_FIT_ROWS, start=previous
            )
            p_alive[idx] = bgnbd.p_alive(previous, x[idx], t_x[idx], T[idx])
            expected[idx] = bgnbd.expected_purchases(previous, x[idx], t_x[idx], T[idx], 30)
        frame[f"{prefix}_p_alive"] = p_alive
        # Inf where the hypergeometric series does not converge: undefined, not a number.
        frame[f"{prefix}_expected_30d"] = np.where(np.isfinite(expected), expected, np.nan)
