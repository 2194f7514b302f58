"""Per-kind candidate SQL: the occasions each trigger kind finds in the marts.

Every builder returns a SELECT with exactly these columns (the planner UNIONs them):

    business_id String, customer_id String,
    occasion String            -- what the message is about, part of the idempotency key
    occasion_date Date         -- local date of the occasion, names the campaign period
    desired_send_at DateTime64(3, 'UTC')   -- before quiet hours; may be in the past
    expires_at DateTime64(3, 'UTC')        -- never sent at or after this (occasion passed)
    offer_id Nullable(String)
    cap_group String, cap_allow Nullable(UInt64)   -- per-run send allowance (partner offers)
    kvars Map(String, String)  -- the kind's template variables, already formatted

Only occasions near `now` are returned: desired_send_at < now + horizon and
expires_at > now − horizon (recently passed ones are kept so the plan shows them as
`occasion_passed`). Time zones are the business's IANA zone (`marts.dim_customers.timezone`);
ClickHouse needs a constant zone per function call, so `SqlContext.tz_case` expands a
per-row zone into a `multiIf` over the zones present in the data — DST-correct because
ClickHouse's own tz database does every conversion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from activation.trigger_specs import (
    AppointmentReminderTrigger,
    BirthdayTrigger,
    CashbackExpiryTrigger,
    CashbackThresholdTrigger,
    PartnerOfferTrigger,
    SegmentOfferTrigger,
    WinbackTrigger,
)


def lit(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def lit_array(values: list[str]) -> str:
    return "CAST([" + ", ".join(lit(v) for v in values) + "], 'Array(String)')"


def lit_map(values: dict[str, str]) -> str:
    inner = ", ".join(f"{lit(k)}, {lit(v)}" for k, v in values.items())
    return f"CAST(map({inner}), 'Map(String, String)')"


def dt_lit(value: datetime) -> str:
    value = value.astimezone(UTC)
    return f"toDateTime64('{value.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}', 3, 'UTC')"


def minutes(t: time | None) -> int:
    return 0 if t is None else t.hour * 60 + t.minute


@dataclass
class SqlContext:
    """What every SQL builder needs: the clock, the horizon, the zones and existing tables."""

    now: datetime
    horizon: timedelta
    zones: list[str]
    tables: set[str] = field(default_factory=set)

    @property
    def now_sql(self) -> str:
        return dt_lit(self.now)

    @property
    def until_sql(self) -> str:
        return dt_lit(self.now + self.horizon)

    @property
    def since_sql(self) -> str:
        return dt_lit(self.now - self.horizon)

    def tz_case(self, tz_col: str, expr: Callable[[str], str]) -> str:
        """`expr(zone_literal)` evaluated with the row's zone; unknown zones fall back to UTC."""
        if not self.zones:
            return expr("'UTC'")
        branches = ", ".join(f"{tz_col} = {lit(z)}, {expr(lit(z))}" for z in self.zones)
        return f"multiIf({branches}, {expr(lit('UTC'))})"

    def local_date(self, ts: str, tz_col: str) -> str:
        return self.tz_case(tz_col, lambda z: f"toDate({ts}, {z})")

    def local_minute(self, ts: str, tz_col: str) -> str:
        return self.tz_case(tz_col, lambda z: f"(toHour({ts}, {z}) * 60 + toMinute({ts}, {z}))")

    def local_format(self, ts: str, fmt: str, tz_col: str) -> str:
        return self.tz_case(tz_col, lambda z: f"formatDateTime({ts}, {lit(fmt)}, {z})")

    def utc_of_local(self, day: str, minute: str, tz_col: str) -> str:
        """UTC instant of local wall-clock `day` + `minute` minutes in the row's zone."""
        return self.tz_case(
            tz_col,
            lambda z: (
                f"toTimeZone(makeDateTime64(toYear({day}), toMonth({day}), toDayOfMonth({day}), "
                f"intDiv({minute}, 60), ({minute}) % 60, 0, 0, 3, {z}), 'UTC')"
            ),
        )


BUSINESS_TZ = (
    "(SELECT business_id, any(timezone) AS tz FROM marts.dim_customers GROUP BY business_id)"
)

_TAIL = (
    "CAST(NULL AS Nullable(String)) AS offer_id, '' AS cap_group, "
    "CAST(NULL AS Nullable(UInt64)) AS cap_allow"
)


def _period(day: str, period: str) -> str:
    return {
        "month": f"formatDateTime({day}, '%Y-%m')",
        "week": (
            f"concat(toString(toISOYear({day})), '-W', leftPad(toString(toISOWeek({day})), 2, '0'))"
        ),
        "year": f"toString(toYear({day}))",
        "none": "''",
    }[period]


def _asap(ctx: SqlContext, spec, today: str, tz_col: str) -> str:
    """Desired send time of occasions without their own time: today at send_at_local, or now."""
    if spec.send_at_local is None:
        return ctx.now_sql
    return ctx.utc_of_local(today, str(minutes(spec.send_at_local)), tz_col)


def _window(inner: str, ctx: SqlContext) -> str:
    return (
        f"SELECT business_id, customer_id, occasion, occasion_date, desired_send_at, expires_at, "
        f"offer_id, cap_group, cap_allow, kvars FROM ({inner}) "
        f"WHERE desired_send_at < {ctx.until_sql} AND expires_at > {ctx.since_sql}"
    )


def birthday_sql(spec: BirthdayTrigger, ctx: SqlContext) -> str:
    n = spec.params.days_before
    send_min = str(minutes(spec.send_at_local))

    def occurrence(year: str) -> str:
        # Feb 29 birthdays fall on Feb 28 in other years.
        return (
            f"makeDate({year}, bm, if(bm = 2 AND bd = 29, "
            f"toDayOfMonth(toLastDayOfMonth(makeDate({year}, 2, 1))), bd))"
        )

    inner = f"""
        SELECT business_id, customer_id,
            concat('birthday:', toString(toYear(occ))) AS occasion,
            occ AS occasion_date,
            {ctx.utc_of_local(f"(occ - {n})", send_min, "tz")} AS desired_send_at,
            {ctx.utc_of_local("(occ + 1)", "0", "tz")} AS expires_at,
            {_TAIL},
            map('birthday_date', formatDateTime(occ, '%d.%m'), 'days_before', '{n}') AS kvars
        FROM (
            SELECT business_id, customer_id, tz,
                if({occurrence("toYear(today)")} >= today, {occurrence("toYear(today)")},
                   {occurrence("toYear(today) + 1")}) AS occ
            FROM (
                SELECT business_id, customer_id, timezone AS tz,
                    {ctx.local_date(ctx.now_sql, "timezone")} AS today,
                    toMonth(assumeNotNull(birthday)) AS bm,
                    toDayOfMonth(assumeNotNull(birthday)) AS bd
                FROM marts.dim_customers
                WHERE birthday IS NOT NULL
            )
        )"""
    return _window(inner, ctx)


def appointment_sql(spec: AppointmentReminderTrigger, ctx: SqlContext) -> str:
    before = int(spec.params.hours_before * 3600)
    lead = int(spec.params.min_lead_hours * 3600)
    label = spec.params.occasion_label
    inner = f"""
        SELECT a.business_id AS business_id, a.customer_id AS customer_id,
            concat('appointment:', a.appointment_id, ':', {lit(label)}) AS occasion,
            {ctx.local_date("a.scheduled_at", "b.tz")} AS occasion_date,
            a.scheduled_at - toIntervalSecond({before}) AS desired_send_at,
            a.scheduled_at - toIntervalSecond({lead}) AS expires_at,
            {_TAIL},
            map('appointment_date', {ctx.local_format("a.scheduled_at", "%d.%m", "b.tz")},
                'appointment_time', {ctx.local_format("a.scheduled_at", "%H:%i", "b.tz")}) AS kvars
        FROM marts.fct_appointments AS a
        INNER JOIN {BUSINESS_TZ} AS b ON a.business_id = b.business_id
        WHERE a.status = 'scheduled'
            AND a.scheduled_at - toIntervalSecond({before}) < {ctx.until_sql}
            AND a.scheduled_at - toIntervalSecond({lead}) > {ctx.since_sql}"""
    return _window(inner, ctx)


SCORES_LATEST = (
    "(SELECT business_id, customer_id, argMax(p_revisit, scored_at) AS p_revisit "
    "FROM ml.revisit_scores GROUP BY business_id, customer_id)"
)


def _rfm_base(spec, ctx: SqlContext, segments: list[str], prefix: str, kvars: str) -> str:
    expires = int(spec.expires_after_hours * 3600)
    score_join, score_where = "", ""
    if isinstance(spec, WinbackTrigger) and spec.params.uses_score:
        score_join = (
            f"INNER JOIN {SCORES_LATEST} AS s "
            "ON r.business_id = s.business_id AND r.customer_id = s.customer_id"
        )
        if spec.params.score_min is not None:
            score_where += f" AND s.p_revisit >= {spec.params.score_min!r}"
        if spec.params.score_max is not None:
            score_where += f" AND s.p_revisit <= {spec.params.score_max!r}"
    inner = f"""
        SELECT business_id, customer_id,
            concat({lit(prefix)}, ':', {_period("today", spec.campaign_period)}) AS occasion,
            today AS occasion_date,
            desired AS desired_send_at,
            greatest(desired, {ctx.now_sql}) + toIntervalSecond({expires}) AS expires_at,
            {_TAIL}, kvars
        FROM (
            SELECT *, {_asap(ctx, spec, "today", "tz")} AS desired
            FROM (
                SELECT r.business_id AS business_id, r.customer_id AS customer_id,
                    {ctx.local_date(ctx.now_sql, "b.tz")} AS today, b.tz AS tz,
                    {kvars} AS kvars
                FROM marts.customer_rfm AS r
                INNER JOIN {BUSINESS_TZ} AS b ON r.business_id = b.business_id
                {score_join}
                WHERE r.segment IN ({", ".join(lit(s) for s in segments)}){score_where}
            )
        )"""
    return _window(inner, ctx)


def winback_sql(spec: WinbackTrigger, ctx: SqlContext) -> str:
    kvars = "map('segment', r.segment, 'days_since_visit', toString(r.recency_days))"
    return _rfm_base(spec, ctx, spec.params.segments, "winback", kvars)


def segment_offer_sql(spec: SegmentOfferTrigger, ctx: SqlContext) -> str:
    segs = list(spec.params.offers)
    lines = [spec.params.offers[s] for s in segs]
    kvars = (
        f"map('segment', r.segment, 'offer', "
        f"transform(r.segment, {lit_array(segs)}, {lit_array(lines)}, ''))"
    )
    return _rfm_base(spec, ctx, segs, "segment_offer", kvars)


def partner_offer_sql(spec: PartnerOfferTrigger, ctx: SqlContext) -> str:
    expires = int(spec.expires_after_hours * 3600)
    factor = spec.params.sends_per_remaining_slot
    if "marts.partner_offer_conversion" in ctx.tables:
        used = (
            "(SELECT offer_id, sum(rewarded_customers) AS rewarded "
            "FROM marts.partner_offer_conversion GROUP BY offer_id)"
        )
    else:  # no conversions measured yet: nobody rewarded so far
        used = "(SELECT '' AS offer_id, toUInt64(0) AS rewarded WHERE 0)"
    exclude_publisher = ""
    if spec.params.exclude_publisher_customers:
        exclude_publisher = (
            "AND (o.publisher_business_id, d.customer_id) NOT IN "
            "(SELECT business_id, customer_id FROM marts.dim_customers WHERE visits > 0)"
        )
    today = ctx.local_date(ctx.now_sql, "d.timezone")
    inner = f"""
        SELECT business_id, customer_id,
            concat('offer:', oid) AS occasion,
            today AS occasion_date,
            desired AS desired_send_at,
            least(greatest(desired, {ctx.now_sql}) + toIntervalSecond({expires}),
                  {ctx.utc_of_local("(valid_to + 1)", "0", "tz")}) AS expires_at,
            oid AS offer_id, oid AS cap_group,
            if(capacity IS NULL, CAST(NULL AS Nullable(UInt64)),
               toUInt64(floor(greatest(toInt64(assumeNotNull(capacity)) - toInt64(rewarded), 0)
                              * {factor!r}))) AS cap_allow,
            map('offer_title', title, 'discount_pct', toString(discount_pct),
                'cashback_pct', toString(cashback_pct),
                'valid_to', formatDateTime(valid_to, '%d.%m.%Y'),
                'publisher_business_id', publisher_business_id) AS kvars
        FROM (SELECT *, {_asap(ctx, spec, "today", "tz")} AS desired FROM (
            SELECT d.business_id AS business_id, d.customer_id AS customer_id,
                d.timezone AS tz, {today} AS today,
                o.offer_id AS oid, o.title AS title, o.discount_pct AS discount_pct,
                o.cashback_pct AS cashback_pct, o.valid_to AS valid_to,
                o.publisher_business_id AS publisher_business_id, o.capacity AS capacity,
                coalesce(u.rewarded, 0) AS rewarded
            FROM (
                SELECT *, distributor FROM marts.dim_partner_offers
                ARRAY JOIN distributor_business_ids AS distributor
            ) AS o
            INNER JOIN marts.dim_customers AS d ON d.business_id = o.distributor
            LEFT JOIN {used} AS u ON u.offer_id = o.offer_id
            WHERE o.distributor != o.publisher_business_id
                AND today >= o.valid_from AND today <= o.valid_to
                AND (o.audience_gender IS NULL OR o.audience_gender = ''
                     OR lower(assumeNotNull(o.audience_gender)) = lower(d.gender))
                AND (o.audience_min_age IS NULL OR (d.birthday IS NOT NULL
                     AND age('year', assumeNotNull(d.birthday), today)
                         >= assumeNotNull(o.audience_min_age)))
                AND (o.audience_max_age IS NULL OR (d.birthday IS NOT NULL
                     AND age('year', assumeNotNull(d.birthday), today)
                         <= assumeNotNull(o.audience_max_age)))
                {exclude_publisher}
        ))"""
    return _window(inner, ctx)


# Cashback is per person (customer_id is the phone's hash, the same at every business);
# the message goes out from the business they visited last, preferring one that may
# contact them.
SENDER = (
    "(SELECT customer_id, pick.1 AS business_id, pick.2 AS tz FROM ("
    "SELECT customer_id, argMax((business_id, timezone), (contactable, "
    "coalesce(last_visit_at, created_at), business_id)) AS pick "
    "FROM marts.dim_customers GROUP BY customer_id))"
)


def cashback_threshold_sql(spec: CashbackThresholdTrigger, ctx: SqlContext) -> str:
    t = f"toDecimal128({lit(str(spec.params.threshold))}, 2)"
    expires = int(spec.expires_after_hours * 3600)
    lookback = dt_lit(ctx.now - timedelta(days=spec.params.lookback_days))
    inner = f"""
        SELECT s.business_id AS business_id, c.customer_id AS customer_id,
            concat('cashback_threshold:', c.currency, ':', toString({t}), ':', c.entry_id)
                AS occasion,
            {ctx.local_date("c.crossed_at", "s.tz")} AS occasion_date,
            {{asap}} AS desired_send_at,
            greatest({{asap}}, {ctx.now_sql}) + toIntervalSecond({expires}) AS expires_at,
            {_TAIL},
            map('balance', toDecimalString(c.balance, 2), 'currency', c.currency,
                'threshold', toDecimalString({t}, 2)) AS kvars
        FROM (
            SELECT customer_id, currency, last.1 AS entry_id, last.2 AS crossed_at,
                last.3 AS balance
            FROM (
            SELECT customer_id, currency,
                argMax((entry_id, occurred_at, bal), (occurred_at, entry_id)) AS last
            FROM (
                SELECT customer_id, currency, entry_id, occurred_at, amount,
                    sum(amount) OVER (PARTITION BY customer_id, currency
                                      ORDER BY occurred_at, entry_id
                                      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS bal
                FROM marts.cashback_ledger
                WHERE occurred_at <= {ctx.now_sql}
            )
            -- crossings: this entry took the running balance from below to at/above it
            WHERE bal >= {t} AND bal - amount < {t}
            GROUP BY customer_id, currency
            )
        ) AS c
        INNER JOIN (
            SELECT customer_id, currency, sum(amount) AS now_balance FROM marts.cashback_ledger
            WHERE occurred_at <= {ctx.now_sql} GROUP BY customer_id, currency
        ) AS nb ON nb.customer_id = c.customer_id AND nb.currency = c.currency
        INNER JOIN {SENDER} AS s ON s.customer_id = c.customer_id
        WHERE c.crossed_at >= {lookback} AND nb.now_balance >= {t}"""
    asap = _asap(ctx, spec, ctx.local_date(ctx.now_sql, "s.tz"), "s.tz")
    return _window(inner.replace("{asap}", asap), ctx)


def cashback_expiry_sql(spec: CashbackExpiryTrigger, ctx: SqlContext) -> str:
    p = spec.params
    lo = dt_lit(ctx.now - timedelta(days=p.expire_after_days))
    hi = dt_lit(ctx.now + timedelta(days=p.warn_days) - timedelta(days=p.expire_after_days))
    min_amount = f"toDecimal128({lit(str(p.min_amount))}, 2)"
    expiry_local = ctx.local_format(
        f"(x.first_at + toIntervalDay({p.expire_after_days}))", "%d.%m.%Y", "s.tz"
    )
    inner = f"""
        SELECT s.business_id AS business_id, x.customer_id AS customer_id,
            concat('cashback_expiry:', x.currency, ':', x.first_entry) AS occasion,
            toDate(x.first_at + toIntervalDay({p.expire_after_days})) AS occasion_date,
            {{asap}} AS desired_send_at,
            x.first_at + toIntervalDay({p.expire_after_days}) AS expires_at,
            {_TAIL},
            map('expiring_amount', toDecimalString(x.expiring, 2), 'currency', x.currency,
                'expiry_date', {expiry_local},
                'balance', toDecimalString(x.balance, 2)) AS kvars
        FROM (
            SELECT a.customer_id AS customer_id, a.currency AS currency,
                argMin(a.entry_id, (a.occurred_at, a.entry_id)) AS first_entry,
                min(a.occurred_at) AS first_at,
                any(t.expiring) AS expiring, any(t.balance) AS balance
            FROM (
                SELECT customer_id, currency, entry_id, occurred_at,
                    sum(amount) OVER (PARTITION BY customer_id, currency
                                      ORDER BY occurred_at, entry_id
                                      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum
                FROM marts.cashback_ledger
                WHERE event_type = 'accrual' AND occurred_at <= {ctx.now_sql}
            ) AS a
            INNER JOIN (
                -- FIFO pointer: what is consumed already, by spending or by expiry
                SELECT customer_id, currency,
                    greatest(-sumIf(amount, event_type != 'accrual'),
                             sumIf(amount, event_type = 'accrual' AND occurred_at <= {lo}))
                        AS pointer,
                    toDecimal128(least(greatest(
                        sumIf(amount, event_type = 'accrual' AND occurred_at <= {hi}) - pointer, 0),
                        greatest(sum(amount), 0)), 2) AS expiring,
                    toDecimal128(sum(amount), 2) AS balance
                FROM marts.cashback_ledger
                WHERE occurred_at <= {ctx.now_sql}
                GROUP BY customer_id, currency
            ) AS t ON t.customer_id = a.customer_id AND t.currency = a.currency
            -- the oldest accrual not consumed yet, if it expires within the warning window
            WHERE a.cum > t.pointer AND a.occurred_at > {lo} AND a.occurred_at <= {hi}
                AND t.expiring >= {min_amount}
            GROUP BY customer_id, currency
        ) AS x
        INNER JOIN {SENDER} AS s ON s.customer_id = x.customer_id"""
    asap = _asap(ctx, spec, ctx.local_date(ctx.now_sql, "s.tz"), "s.tz")
    return _window(inner.replace("{asap}", asap), ctx)


# kind → (builder, tables it reads besides marts.dim_customers)
BUILDERS: dict[str, tuple[Callable[..., str], tuple[str, ...]]] = {
    "birthday": (birthday_sql, ()),
    "appointment_reminder": (appointment_sql, ("marts.fct_appointments",)),
    "winback": (winback_sql, ("marts.customer_rfm",)),
    "segment_offer": (segment_offer_sql, ("marts.customer_rfm",)),
    "partner_offer": (partner_offer_sql, ("marts.dim_partner_offers",)),
    "cashback_threshold": (cashback_threshold_sql, ("marts.cashback_ledger",)),
    "cashback_expiry": (cashback_expiry_sql, ("marts.cashback_ledger",)),
}
