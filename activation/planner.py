"""The planner: who gets which message, when and through which channel — in ClickHouse.

`plan(client, triggers, now=…)` runs one set-based INSERT … SELECT that turns the
occasions every trigger finds (activation/candidates.py) into decisions, written to
`activation.send_plan` (one row per candidate, `run_id` names the run):

    decision  planned | holdout | excluded
    reason    '' for planned/holdout; otherwise the first rule that excluded the row:
              unknown_customer, opted_out, no_consent, not_contactable, unknown_timezone,
              no_channel, occasion_passed, already_planned, uplift_below_cost,
              frequency_cap, priority:<winning trigger>, offer_capacity

Rules, in order (the reason is the first that fails):
- consent: opted out (inbound STOP on any channel, a Telegram block:
  `dim_customers.opted_out`) always excludes; triggers that require marketing consent
  also need `consent_marketing` and `contactable`.
- channel: the first of the trigger's `channels` the customer can receive — WhatsApp
  and SMS reach the E.164 phone, Telegram needs a known chat (`<chat_id>:<message_id>`
  provider ids of earlier Telegram sends in `marts.fct_message_sends`).
- time: send_at = max(desired time, now), moved out of the trigger's quiet hours to the
  next allowed local time (business zone, DST-correct); dropped as `occasion_passed` when
  that is at or after `expires_at` (e.g. a reminder whose appointment would be past).
- dedupe: the idempotency key (activation.contracts.idempotency_key, computed in SQL)
  already in `activation.message_log` or `marts.fct_message_sends.message_id`.
- uplift (triggers with `uplift_targeting` only): the customer's latest uplift for the
  trigger (`ml.uplift_scores`, ml/uplift.py) × value per revisit (the spec's, else the
  customer's average visit amount) must exceed the message cost; no score = no send.
- frequency cap: messages to the customer at the business (any trigger, not holdout)
  already sent or planned since now − per_days must be < max_messages; winners planned
  earlier in the same run count too (conservatively).
- priority: of the customer's remaining candidates at a business on the same local send
  day, the highest `priority` wins (ties: trigger name, occasion); the others are
  excluded this run (`priority:<winner>`) and come back in the next one if still due.
  A message already planned (`already_planned`) competes too, so a rerun on the same day
  does not plan what it beat.
- holdout: `cityHash64(campaign_id, customer_id) % 100 < holdout_pct` — the same customer
  is always in the same group for a campaign; holdout rows are never sent.
- partner offer capacity: per offer, at most the allowance of the run (remaining
  capacity × sends_per_remaining_slot) is planned, picked by a stable hash.

Nothing is sent here: the planned rows come back as `Plan.planned` (a DataFrame with the
`PlannedMessage` fields) for the outbox; `Plan.messages()` converts them.
"""

from __future__ import annotations

import json
import uuid
import zoneinfo
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from clickhouse_connect.driver.client import Client

from activation.candidates import BUILDERS, SqlContext, dt_lit, lit, lit_array, lit_map, minutes
from activation.contracts import Channel, PlannedAccrual, PlannedMessage
from activation.trigger_specs import AnyTrigger

SEND_PLAN = "activation.send_plan"
MESSAGE_LOG = "activation.message_log"
SCORES = "ml.revisit_scores"
UPLIFT_SCORES = "ml.uplift_scores"
MESSAGE_SENDS = "marts.fct_message_sends"

SEND_PLAN_COLUMNS = """
    run_id String,
    planned_at DateTime64(3, 'UTC'),
    decision LowCardinality(String),
    reason LowCardinality(String),
    idempotency_key String,
    campaign_id String,
    trigger LowCardinality(String),
    business_id String,
    customer_id String,
    occasion String,
    segment LowCardinality(String),
    phone_e164 String,
    channel LowCardinality(String),
    recipient String,
    template LowCardinality(String),
    language LowCardinality(String),
    variables Map(String, String),
    text String,
    desired_send_at DateTime64(3, 'UTC'),
    send_at DateTime64(3, 'UTC'),
    expires_at DateTime64(3, 'UTC'),
    holdout Bool,
    priority Int32,
    offer_id Nullable(String)
"""

CANDIDATE_COLUMNS = (
    "trigger",
    "priority",
    "holdout_pct",
    "template",
    "language",
    "tpl_lits",
    "tpl_names",
    "tpl_tail",
    "tpl_defaults",
    "channels",
    "quiet_start",
    "quiet_end",
    "cap_k",
    "cap_d",
    "requires_consent",
    "period_kind",
    "business_id",
    "customer_id",
    "occasion",
    "occasion_date",
    "desired_send_at",
    "expires_at",
    "offer_id",
    "cap_group",
    "cap_allow",
    "kvars",
    "uplift_on",
    "uplift_value",
    "uplift_cost",
)

MESSAGE_FIELDS = [
    "idempotency_key",
    "campaign_id",
    "trigger",
    "business_id",
    "customer_id",
    "phone_e164",
    "channel",
    "recipient",
    "template",
    "language",
    "variables",
    "text",
    "send_at",
    "expires_at",
    "holdout",
    "priority",
    "offer_id",
]


class PlannerError(RuntimeError):
    """The plan cannot be built (a required table is missing or has the wrong shape)."""


@dataclass
class Plan:
    """One planning run. `planned`/`holdout` hold the `PlannedMessage` fields (+ segment;
    `variables` as a JSON object string).

    `counts` has one row per (trigger, decision, reason) with `n`; `skipped` maps a
    trigger name to why it did not run (disabled, outside validity, missing table…).
    """

    run_id: str
    now: datetime
    table: str
    planned: pd.DataFrame
    holdout: pd.DataFrame
    counts: pd.DataFrame
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def messages(self) -> list[PlannedMessage]:
        """The planned (to be sent) rows as contract objects."""
        return list(iter_messages(self.planned))

    def holdout_messages(self) -> list[PlannedMessage]:
        """Holdout records (holdout=True): for the lift measurement, never sent."""
        return list(iter_messages(self.holdout))


def iter_messages(frame: pd.DataFrame) -> Iterator[PlannedMessage]:
    """DataFrame rows (MESSAGE_FIELDS columns) → PlannedMessage, lazily."""
    for row in frame[MESSAGE_FIELDS].itertuples(index=False):
        data = row._asdict()
        raw = data["variables"]
        data["variables"] = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
        if data["offer_id"] is None or pd.isna(data["offer_id"]):
            data["offer_id"] = None
        for col in ("send_at", "expires_at"):
            data[col] = pd.Timestamp(data[col]).to_pydatetime()
        yield PlannedMessage(**data)


# --- warehouse helpers -----------------------------------------------------------------


def existing_tables(client: Client) -> set[str]:
    rows = client.query(
        "SELECT database || '.' || name FROM system.tables "
        "WHERE database IN ('marts', 'ml', 'activation')"
    ).result_rows
    return {r[0] for r in rows}


def _columns(client: Client, table: str) -> set[str]:
    db, name = table.split(".")
    rows = client.query(
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String}",
        parameters={"db": db, "t": name},
    ).result_rows
    return {r[0] for r in rows}


def ensure_send_plan(client: Client, table: str = SEND_PLAN) -> None:
    """Create `activation.send_plan` (or another target of the same shape) if missing."""
    client.command("CREATE DATABASE IF NOT EXISTS activation")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {table} ({SEND_PLAN_COLUMNS}) ENGINE = MergeTree "
        "ORDER BY (run_id, trigger, business_id, customer_id, idempotency_key)"
    )


def _zones(client: Client) -> tuple[list[str], list[str]]:
    """Zones of the businesses: (known to zoneinfo, unknown)."""
    rows = client.query("SELECT DISTINCT timezone FROM marts.dim_customers").result_rows
    known, bad = [], []
    for (tz,) in rows:
        try:
            zoneinfo.ZoneInfo(tz)
            known.append(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            bad.append(tz)
    return sorted(known), sorted(bad)


def key_sql(trigger: str, business_id: str, customer_id: str, occasion: str) -> str:
    """SQL twin of activation.contracts.idempotency_key (sha256, 32 hex chars)."""
    return (
        f"substring(lower(hex(SHA256(concat({trigger}, '\\x1F', {business_id}, '\\x1F', "
        f"{customer_id}, '\\x1F', {occasion})))), 1, 32)"
    )


# --- SQL assembly ----------------------------------------------------------------------


def _trigger_sql(spec: AnyTrigger, ctx: SqlContext) -> str:
    builder, _ = BUILDERS[spec.kind]
    lits, names, tail = spec.template.pieces()
    audience = spec.audience.to_sql()
    where = f"WHERE (business_id, customer_id) IN ({audience})" if audience else ""
    qs, qe = minutes(spec.quiet_hours.start), minutes(spec.quiet_hours.end)
    return f"""
        SELECT {lit(spec.name)} AS trigger, toInt32({spec.priority}) AS priority,
            toUInt8({spec.holdout_pct}) AS holdout_pct,
            {lit(spec.template.name)} AS template, {lit(spec.template.language)} AS language,
            {lit_array(lits)} AS tpl_lits, {lit_array(names)} AS tpl_names,
            {lit(tail)} AS tpl_tail, {lit_map(spec.template.defaults)} AS tpl_defaults,
            {lit_array([c.value for c in spec.channels])} AS channels,
            toUInt16({qs}) AS quiet_start, toUInt16({qe}) AS quiet_end,
            toUInt32({spec.frequency_cap.max_messages}) AS cap_k,
            toUInt32({spec.frequency_cap.per_days}) AS cap_d,
            {"true" if spec.requires_marketing_consent else "false"} AS requires_consent,
            {lit(spec.campaign_period)} AS period_kind,
            {_uplift_sql(spec)},
            k.*
        FROM ({builder(spec, ctx)}) AS k
        {where}"""


def _uplift_sql(spec: AnyTrigger) -> str:
    rule = spec.uplift_targeting
    if rule is None:
        return (
            "false AS uplift_on, CAST(NULL, 'Nullable(Float64)') AS uplift_value, 0. AS uplift_cost"
        )
    value = "NULL" if rule.value_per_revisit is None else repr(float(rule.value_per_revisit))
    return (
        f"true AS uplift_on, CAST({value}, 'Nullable(Float64)') AS uplift_value, "
        f"toFloat64({float(rule.message_cost)!r}) AS uplift_cost"
    )


def _history_sql(ctx: SqlContext, max_days: int) -> tuple[str, str]:
    """(per-customer send times since now − max_days, keys already decided)."""
    since = dt_lit(ctx.now - timedelta(days=max_days))
    sends, keys = [], []
    if MESSAGE_SENDS in ctx.tables:
        sends.append(
            "SELECT business_id, customer_id, message_id AS id, "
            f"coalesce(sent_at, planned_at) AS t FROM {MESSAGE_SENDS} "
            f"WHERE NOT holdout AND coalesce(sent_at, planned_at) >= {since}"
        )
        keys.append(f"SELECT message_id AS k FROM {MESSAGE_SENDS}")
    if MESSAGE_LOG in ctx.tables:
        sends.append(
            "SELECT business_id, customer_id, idempotency_key AS id, send_at AS t "
            f"FROM {MESSAGE_LOG} WHERE NOT holdout "
            f"AND state IN ('planned', 'sending', 'sent') AND send_at >= {since}"
        )
        keys.append(f"SELECT idempotency_key AS k FROM {MESSAGE_LOG}")
    if not sends:
        hist = (
            "SELECT '' AS business_id, '' AS customer_id, "
            "CAST([], 'Array(DateTime64(3, \\'UTC\\'))') AS times WHERE 0"
        )
        return hist, "SELECT '' AS k WHERE 0"
    hist = (
        "SELECT business_id, customer_id, groupArray(t) AS times FROM ("
        "SELECT business_id, customer_id, id, max(t) AS t FROM ("
        + " UNION ALL ".join(sends)
        + ") GROUP BY business_id, customer_id, id) GROUP BY business_id, customer_id"
    )
    return hist, " UNION ALL ".join(keys)


def build_plan_sql(
    specs: Sequence[AnyTrigger],
    ctx: SqlContext,
    *,
    run_id: str,
    target: str,
    scratch: str,
    channels_enabled: frozenset[Channel],
) -> tuple[list[str], list[str]]:
    """The statements of a planning run (see the module docstring for the rules).

    Returns (statements to run in order, scratch tables they create — drop them after).
    """
    now = ctx.now_sql
    cand = " UNION ALL ".join(_trigger_sql(s, ctx) for s in specs)
    max_days = max(s.frequency_cap.per_days for s in specs)
    hist, done = _history_sql(ctx, max_days)
    if MESSAGE_SENDS in ctx.tables:
        tg = (
            "SELECT phone_e164, argMax(splitByChar(':', assumeNotNull(provider_message_id))[1], "
            f"planned_at) AS chat_id FROM {MESSAGE_SENDS} "
            "WHERE channel = 'telegram' AND provider_message_id LIKE '%:%' GROUP BY phone_e164"
        )
    else:
        tg = "SELECT '' AS phone_e164, '' AS chat_id WHERE 0"
    if "marts.customer_rfm" in ctx.tables:
        seg = "SELECT business_id, customer_id, segment FROM marts.customer_rfm"
    else:
        seg = "SELECT '' AS business_id, '' AS customer_id, '' AS segment WHERE 0"
    if UPLIFT_SCORES in ctx.tables and any(s.uplift_targeting for s in specs):
        up = (
            "SELECT business_id, customer_id, trigger, argMax(uplift, scored_at) AS uplift "
            f"FROM {UPLIFT_SCORES} GROUP BY business_id, customer_id, trigger"
        )
    else:
        up = "SELECT '' AS business_id, '' AS customer_id, '' AS trigger, 0. AS uplift WHERE 0"
    enabled = lit_array(sorted(c.value for c in channels_enabled))
    cand_cols = ", ".join(f"c.{col} AS {col}" for col in CANDIDATE_COLUMNS)
    local_min = ctx.local_minute("t0", "tz")
    local_day = ctx.local_date("t0", "tz")
    send_day = ctx.local_date("send_at", "tz")
    moved = ctx.utc_of_local("quiet_day", "quiet_end", "tz")
    zones = lit_array(ctx.zones)
    key = key_sql("trigger", "business_id", "customer_id", "occasion")
    period = (
        "multiIf(period_kind = 'month', formatDateTime(occasion_date, '%Y-%m'), "
        "period_kind = 'week', concat(toString(toISOYear(occasion_date)), '-W', "
        "leftPad(toString(toISOWeek(occasion_date)), 2, '0')), "
        "period_kind = 'year', toString(toYear(occasion_date)), '')"
    )
    base_table, decided_table, rules_table = (
        f"{scratch}_{part}" for part in ("base", "decided", "rules")
    )
    stage_base = f"""
CREATE TABLE {base_table} ENGINE = Memory AS
WITH
    dc AS (
        SELECT business_id, customer_id, phone_e164, full_name, business_kind, timezone,
            consent_marketing, opted_out, contactable,
            if(visits > 0, toFloat64(revenue) / visits, 0.) AS avg_visit_amount
        FROM marts.dim_customers
    ),
    up AS ({up}),
    tg AS ({tg}),
    seg AS ({seg}),
    hist AS ({hist}),
    base AS (
        SELECT {cand_cols}, dc.customer_id != '' AS known, dc.phone_e164 AS phone_e164,
            dc.full_name AS full_name, dc.business_kind AS business_kind, dc.timezone AS tz,
            dc.consent_marketing AS consent_marketing, dc.opted_out AS opted_out,
            dc.contactable AS contactable, tg.chat_id AS chat_id, seg.segment AS segment,
            hist.times AS times,
            -- a customer without an uplift score is worth no message to an uplift trigger
            c.uplift_on AND up.uplift * ifNull(c.uplift_value, dc.avg_visit_amount)
                <= c.uplift_cost AS below_cost,
            greatest(c.desired_send_at, {now}) AS t0
        FROM ({cand}) AS c
        LEFT JOIN dc ON dc.business_id = c.business_id AND dc.customer_id = c.customer_id
        LEFT JOIN tg ON tg.phone_e164 = dc.phone_e164
        LEFT JOIN seg ON seg.business_id = c.business_id AND seg.customer_id = c.customer_id
        LEFT JOIN hist ON hist.business_id = c.business_id AND hist.customer_id = c.customer_id
        LEFT JOIN up ON up.business_id = c.business_id AND up.customer_id = c.customer_id
            AND up.trigger = c.trigger
    )
SELECT * FROM base"""
    # Staged through scratch tables: one statement over the whole pipeline made ClickHouse
    # evaluate the candidate subqueries more than once (measured 2x slower).
    stage_decided = f"""
CREATE TABLE {decided_table} ENGINE = Memory AS
WITH
    timed AS (
        SELECT *,
            {local_min} AS local_min,
            if(quiet_start < quiet_end, local_min >= quiet_start AND local_min < quiet_end,
               local_min >= quiet_start OR local_min < quiet_end) AS in_quiet,
            {local_day} + if(quiet_start > quiet_end AND local_min >= quiet_start, 1, 0)
                AS quiet_day
        FROM {base_table}
    ),
    decided AS (
        SELECT *,
            rowNumberInAllBlocks() AS rid,
            if(in_quiet, {moved}, t0) AS send_at,
            {key} AS idempotency_key,
            concat(trigger, '-', business_id, if(period = '', '', concat('-', period)))
                AS campaign_id,
            arrayFirst(ch -> has({enabled}, ch) AND (
                (ch IN ('whatsapp', 'sms') AND phone_e164 != '')
                OR (ch = 'telegram' AND chat_id != '')), channels) AS channel,
            arrayCount(x -> x >= {now} - toIntervalDay(cap_d), times) AS recent,
            mapUpdate(kvars, map('first_name', splitByWhitespace(full_name)[1],
                                 'full_name', full_name, 'business_kind', business_kind))
                AS vars_all
        FROM (SELECT *, {period} AS period FROM timed)
    )
SELECT * FROM decided"""
    # The rule windows sort every candidate; they run over a narrow projection (keys, order
    # columns, row id) and the wide columns (maps, template pieces) join back by row id:
    # sorting the full rows cost more than the rest of the plan (measured at 1M).
    stage_rules = f"""
CREATE TABLE {rules_table} ENGINE = Memory AS
WITH
    reasoned AS (
        SELECT rid, business_id, customer_id, trigger, occasion, priority, send_at,
            campaign_id, holdout_pct, recent, cap_k, cap_group, cap_allow,
            {send_day} AS send_day,
            multiIf(
                NOT known, 'unknown_customer',
                opted_out, 'opted_out',
                requires_consent AND NOT consent_marketing, 'no_consent',
                requires_consent AND NOT contactable, 'not_contactable',
                NOT has({zones}, tz), 'unknown_timezone',
                channel = '', 'no_channel',
                send_at >= expires_at, 'occasion_passed',
                idempotency_key IN ({done}), 'already_planned',
                below_cost, 'uplift_below_cost',
                recent >= cap_k, 'frequency_cap',
                '') AS reason0
        FROM {decided_table}
    ),
    ranked AS (
        SELECT *,
            row_number() OVER w AS prio_rank,
            first_value(trigger) OVER w AS winner
        FROM reasoned
        -- A message an earlier run already planned for the day still holds the day: a
        -- rerun (after a crash, or the next scheduled run) must not hand its day to the
        -- trigger it beat.
        WINDOW w AS (PARTITION BY business_id, customer_id, send_day,
                                  reason0 IN ('', 'already_planned')
                     ORDER BY priority DESC, trigger, occasion
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    ),
    runcapped AS (
        -- earlier winners of this run count against the cap too (conservatively: also
        -- ones that are capped or held out themselves)
        SELECT *,
            if(reason0 = '' AND prio_rank > 1, concat('priority:', winner), reason0) AS reason1,
            if(reason1 = '' AND recent + row_number() OVER (
                   PARTITION BY business_id, customer_id, reason1 = ''
                   ORDER BY send_at, priority DESC, trigger, occasion) - 1 >= cap_k,
               'frequency_cap', reason1) AS reason2
        FROM ranked
    ),
    held AS (
        SELECT *,
            reason2 = '' AND cityHash64(campaign_id, customer_id) % 100 < holdout_pct
                AS is_holdout
        FROM runcapped
    ),
    capped AS (
        SELECT *,
            if(cap_allow IS NOT NULL AND reason2 = '' AND NOT is_holdout
               AND row_number() OVER (
                   PARTITION BY cap_group, reason2 = '' AND NOT is_holdout
                   ORDER BY cityHash64(cap_group, customer_id), business_id, customer_id
               ) > assumeNotNull(cap_allow), 'offer_capacity', reason2) AS reason
        FROM held
    )
SELECT rid, reason, is_holdout FROM capped"""
    stage_insert = f"""
INSERT INTO {target}
SELECT
    {lit(run_id)} AS run_id,
    {now} AS planned_at,
    multiIf(r.reason != '', 'excluded', r.is_holdout, 'holdout', 'planned') AS decision,
    r.reason AS reason,
    idempotency_key,
    campaign_id,
    trigger,
    business_id,
    customer_id,
    occasion,
    segment,
    phone_e164,
    channel,
    if(channel = 'telegram', chat_id, phone_e164) AS recipient,
    template,
    language,
    mapFilter((k, v) -> has(tpl_names, k), vars_all) AS variables,
    concat(arrayStringConcat(arrayMap((l, n) -> concat(l,
        if(vars_all[n] = '', tpl_defaults[n], vars_all[n])), tpl_lits, tpl_names)),
        tpl_tail) AS text,
    desired_send_at,
    send_at,
    expires_at,
    r.is_holdout AS holdout,
    priority,
    offer_id
FROM {decided_table} AS d
INNER JOIN {rules_table} AS r ON r.rid = d.rid
"""
    return [stage_base, stage_decided, stage_rules, stage_insert], [
        base_table,
        decided_table,
        rules_table,
    ]


def _runnable(
    specs: Sequence[AnyTrigger], tables: set[str], now: datetime
) -> tuple[list[AnyTrigger], dict[str, str]]:
    run, skipped = [], {}
    today = now.astimezone(UTC).date()
    for spec in specs:
        _, needs = BUILDERS[spec.kind]
        missing = [t for t in needs if t not in tables]
        if spec.requires_score and SCORES not in tables:
            missing.append(SCORES)
        if spec.uplift_targeting is not None and UPLIFT_SCORES not in tables:
            missing.append(UPLIFT_SCORES)
        if not spec.enabled:
            skipped[spec.name] = "disabled"
        elif not spec.active_on(today):
            v = spec.validity
            skipped[spec.name] = f"outside its validity window {v.valid_from} – {v.valid_to}"
        elif missing:
            skipped[spec.name] = f"missing table(s) {', '.join(missing)}"
        else:
            run.append(spec)
    return run, skipped


def plan(
    client: Client,
    triggers: Sequence[AnyTrigger],
    *,
    now: datetime,
    horizon: timedelta = timedelta(hours=24),
    run_id: str | None = None,
    table: str = SEND_PLAN,
    channels_enabled: frozenset[Channel] = frozenset(Channel),
) -> Plan:
    """Plan every trigger for the occasions due before now + horizon; write the decisions.

    Writes every candidate with its decision into `table` (default activation.send_plan)
    under `run_id` and returns the planned and holdout rows. `now` must be timezone-aware.
    Raises PlannerError when marts.dim_customers or a message log of the wrong shape is
    found; a trigger whose own inputs are missing is skipped (see `Plan.skipped`).
    """
    import time as _time

    if now.tzinfo is None:
        raise ValueError("plan(now=…) must be timezone-aware (UTC)")
    started = _time.perf_counter()
    run_id = run_id or uuid.uuid4().hex
    tables = existing_tables(client)
    if "marts.dim_customers" not in tables:
        raise PlannerError("marts.dim_customers does not exist: run the dbt models first")
    if MESSAGE_LOG in tables:
        need = {"idempotency_key", "business_id", "customer_id", "state", "holdout", "send_at"}
        missing = need - _columns(client, MESSAGE_LOG)
        if missing:
            raise PlannerError(f"{MESSAGE_LOG} lacks column(s) {sorted(missing)}")
    ensure_send_plan(client, table)
    runnable, skipped = _runnable(triggers, tables, now)
    zones, _bad = _zones(client)
    ctx = SqlContext(now=now.astimezone(UTC), horizon=horizon, zones=zones, tables=tables)
    if runnable:
        statements, scratch = build_plan_sql(
            runnable,
            ctx,
            run_id=run_id,
            target=table,
            scratch=f"activation._plan_{run_id[:16]}",
            channels_enabled=channels_enabled,
        )
        try:
            for statement in statements:
                client.command(statement)
        finally:
            for name in scratch:
                client.command(f"DROP TABLE IF EXISTS {name}")
    # variables travel as a JSON object string: converting a Map column to Python dicts
    # cost more than the rest of the read
    cols = ", ".join(
        "toJSONString(variables) AS variables" if c == "variables" else c
        for c in [*MESSAGE_FIELDS, "segment", "decision"]
    )
    # through Arrow: about twice as fast as query_df's row decoding for a large plan
    rows = client.query_arrow(
        f"SELECT {cols} FROM {table} WHERE run_id = {{r:String}} AND decision != 'excluded' "
        "ORDER BY send_at, business_id, customer_id, trigger",
        parameters={"r": run_id},
    ).to_pandas()
    counts = client.query_df(
        f"SELECT trigger, decision, reason, count() AS n FROM {table} "
        "WHERE run_id = {r:String} GROUP BY trigger, decision, reason "
        "ORDER BY trigger, decision, reason",
        parameters={"r": run_id},
    )
    if rows.empty:
        rows = pd.DataFrame(columns=[*MESSAGE_FIELDS, "segment", "decision"])
    is_planned = rows["decision"] == "planned"
    return Plan(
        run_id=run_id,
        now=now,
        table=table,
        planned=rows[is_planned].drop(columns="decision").reset_index(drop=True),
        holdout=rows[~is_planned].drop(columns="decision").reset_index(drop=True),
        counts=counts,
        skipped=skipped,
        seconds=_time.perf_counter() - started,
    )


# --- accruals --------------------------------------------------------------------------


def plan_accruals(client: Client, *, since: datetime | None = None) -> pd.DataFrame:
    """One row per `accrual` entry of marts.cashback_ledger, shaped like PlannedAccrual.

    Key: idempotency_key('accrual', partner_id, customer_id, 'accrual:<entry_id>') where
    entry_id is `<partner_id>:<event_id>` — computed in SQL, equal to the Python one.
    campaign_id is `accrual-<partner_id>-<YYYY-MM of occurred_at>`. `since` limits to
    entries that occurred at or after it. Convert with `iter_accruals`.
    """
    where = f"AND occurred_at >= {dt_lit(since)}" if since else ""
    key = key_sql("'accrual'", "partner_id", "customer_id", "concat('accrual:', entry_id)")
    return client.query_df(
        f"""
        SELECT {key} AS idempotency_key,
            concat('accrual-', partner_id, '-', formatDateTime(occurred_at, '%Y-%m'))
                AS campaign_id,
            partner_id AS business_id, customer_id, phone_e164,
            toDecimal128(amount, 2) AS amount, currency,
            entry_id AS source_event_id, occurred_at AS created_at
        FROM marts.cashback_ledger
        WHERE event_type = 'accrual' {where}
        ORDER BY occurred_at, entry_id"""
    )


def iter_accruals(frame: pd.DataFrame) -> Iterator[PlannedAccrual]:
    """plan_accruals rows → PlannedAccrual, lazily."""
    for row in frame.itertuples(index=False):
        data: dict[str, Any] = row._asdict()
        data["created_at"] = pd.Timestamp(data["created_at"]).to_pydatetime()
        yield PlannedAccrual(**data)
