"""Activation runs: plan, enqueue accruals, deliver, and look at the outbox — as plain
functions that return plain reports.

The Dagster assets call these, and so can a command line
(`revisit activation plan|run|deliver|status|dead-letters|reconcile`): nothing here knows
about Dagster or reads the environment. Callers hand in what a run needs:

- `client` — an open warehouse client. In embedded mode the caller opens it for the
  call and closes it afterwards (the engine is one process per directory);
- `outbox` — the transactional store (`Outbox(state_dsn)`, or `open_outbox(state_dsn)`
  which disposes it afterwards);
- `providers` — `ProvidersConfig` (endpoints, tokens, rate limits, retries).

    with open_outbox(state_dsn) as outbox, warehouse.connect(dsn) as client:
        planned = plan(client, select_triggers(["birthday_greeting"]), now=now,
                       outbox=outbox, dry_run=False)
        accruals = enqueue_accruals(client, outbox, dry_run=False)
        delivered = deliver_due(client, outbox, providers, dry_run=False)

Every step is idempotent: planning and enqueueing are keyed by idempotency key (a key
already in the outbox is left as it is), delivery sends each key once (within each
provider's crash guarantee, see activation/delivery.py), the activation log replaces rows
by version, and provider opt-outs are loaded as one batch per set of keys. Dry runs (the
default) compute and count, and store or send nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from activation.contracts import State
from activation.delivery import DeliveryReport, OptOut
from activation.outbox import KINDS, EnqueueResult, Kind, Outbox
from activation.providers import AlreadyDelivered, ProvidersConfig
from activation.reconcile import ReconcileReport
from activation.trigger_specs import AnyTrigger, load_triggers

DEFAULT_HORIZON = dt.timedelta(hours=24)
PLANNED, HOLDOUT = "planned", "holdout"
# Sample message texts kept per trigger in a plan report.
SAMPLES_PER_TRIGGER = 3


# --- inputs ------------------------------------------------------------------------------


@contextmanager
def open_outbox(state_dsn: str) -> Iterator[Outbox]:
    """The outbox at `state_dsn` (tables created if missing), disposed when the block ends."""
    outbox = Outbox(state_dsn)
    try:
        yield outbox
    finally:
        outbox.dispose()


def select_triggers(
    names: Iterable[str] | None = None, *, directory: Path | None = None
) -> list[AnyTrigger]:
    """The trigger specs named (all when None), in name order; ValueError for unknown names."""
    specs = load_triggers(directory)
    if names is None:
        return specs
    wanted = list(dict.fromkeys(names))
    known = {s.name: s for s in specs}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ValueError(f"unknown trigger(s) {unknown}; known: {sorted(known)}")
    return [known[n] for n in sorted(wanted)]


def planning_time(text: str | None = None) -> dt.datetime:
    """ISO 8601 → an aware datetime (naive means UTC); empty or None means now (UTC)."""
    if not text:
        return dt.datetime.now(dt.UTC)
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# --- planning ----------------------------------------------------------------------------


@dataclass
class TriggerOutcome:
    """One trigger's part of a planning run."""

    trigger: str
    decisions: dict[str, int] = field(default_factory=dict)  # planned | holdout | excluded
    excluded_by_reason: dict[str, int] = field(default_factory=dict)
    skipped: str = ""  # why the trigger did not run (disabled, outside validity, …)
    samples: list[str] = field(default_factory=list)  # a few message texts

    @property
    def planned(self) -> int:
        return self.decisions.get(PLANNED, 0)

    @property
    def holdout(self) -> int:
        return self.decisions.get(HOLDOUT, 0)

    @property
    def excluded(self) -> int:
        return sum(n for d, n in self.decisions.items() if d not in (PLANNED, HOLDOUT))


@dataclass
class PlanReport:
    """A planning run: per trigger counts; live, what went into the outbox."""

    run_id: str
    now: dt.datetime
    dry_run: bool
    triggers: list[TriggerOutcome]
    inserted: int = 0  # live: new outbox rows (messages and holdout records)
    already_there: int = 0  # live: keys the outbox already had (left as they were)
    seconds: float = 0.0
    detail: str = ""  # dry run: the full report, rendered (segments, channels, exclusions)

    def outcome(self, trigger: str) -> TriggerOutcome:
        for outcome in self.triggers:
            if outcome.trigger == trigger:
                return outcome
        raise KeyError(trigger)

    @property
    def planned(self) -> int:
        return sum(t.planned for t in self.triggers)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["now"] = self.now.isoformat()
        for row, outcome in zip(out["triggers"], self.triggers, strict=True):
            row.update(planned=outcome.planned, holdout=outcome.holdout,
                       excluded=outcome.excluded)  # fmt: skip
        return out


def plan(
    client: Any,
    triggers: Sequence[AnyTrigger],
    *,
    now: dt.datetime,
    outbox: Outbox | None = None,
    dry_run: bool = True,
    horizon: dt.timedelta = DEFAULT_HORIZON,
) -> PlanReport:
    """Plan the triggers together for the occasions due before now + horizon.

    Triggers planned together have their priorities and frequency caps resolved across
    each other (caps also count what earlier runs planned or sent). Live, the planned
    messages and the holdout records go into the outbox (idempotent by key) and the
    decisions stay in `activation.send_plan`; a dry run plans into a scratch table,
    counts and samples it, and drops it.
    """
    if now.tzinfo is None:
        raise ValueError("plan(now=…) must be timezone-aware")
    if dry_run:
        return _dry_plan(client, triggers, now, horizon)
    if outbox is None:
        raise ValueError("a live plan needs the outbox")
    from activation import planner
    from activation.dry_run import masked_texts

    result = planner.plan(client, triggers, now=now, horizon=horizon)
    enqueued = outbox.enqueue([*result.messages(), *result.holdout_messages()], now=now)
    counts = result.counts
    outcomes = []
    for spec in triggers:
        rows = counts[counts.trigger == spec.name]
        excluded = rows[rows.decision == "excluded"]
        head = result.planned.loc[
            result.planned.trigger == spec.name, ["business_id", "customer_id", "text"]
        ].head(SAMPLES_PER_TRIGGER)
        outcomes.append(
            TriggerOutcome(
                trigger=spec.name,
                decisions={str(d): int(n) for d, n in rows.groupby("decision").n.sum().items()},
                excluded_by_reason={
                    str(r): int(n) for r, n in excluded.groupby("reason").n.sum().items()
                },
                skipped=result.skipped.get(spec.name, ""),
                # Shown in logs and Dagster metadata: names and phones masked.
                samples=masked_texts(
                    client, [(str(b), str(c), str(t)) for b, c, t in head.itertuples(index=False)]
                ),
            )
        )
    return PlanReport(
        run_id=result.run_id, now=now, dry_run=False, triggers=outcomes,
        inserted=enqueued.inserted, already_there=enqueued.existing,
        seconds=round(result.seconds, 3),
    )  # fmt: skip


def _dry_plan(
    client: Any, triggers: Sequence[AnyTrigger], now: dt.datetime, horizon: dt.timedelta
) -> PlanReport:
    from activation.dry_run import dry_run

    report = dry_run(client, triggers, now, horizon=horizon)
    outcomes = []
    for spec in triggers:
        decisions = {
            c.key.get("decision", "?"): c.n
            for c in report.by_trigger
            if c.key.get("trigger") == spec.name
        }
        reasons = {e.reason: e.n for e in report.exclusions if e.trigger == spec.name}
        samples = [s.text for s in report.samples if s.trigger == spec.name]
        outcomes.append(
            TriggerOutcome(
                trigger=spec.name, decisions=decisions, excluded_by_reason=reasons,
                skipped=report.skipped.get(spec.name, ""),
                samples=samples[:SAMPLES_PER_TRIGGER],
            )
        )  # fmt: skip
    return PlanReport(
        run_id=report.run_id, now=now, dry_run=True, triggers=outcomes,
        seconds=report.seconds, detail=report.render(),
    )  # fmt: skip


# --- accruals ----------------------------------------------------------------------------


@dataclass
class AccrualReport:
    """Accruals found in marts.cashback_ledger; live, what went into the outbox."""

    dry_run: bool
    accruals: int
    inserted: int = 0
    already_there: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def enqueue_accruals(
    client: Any,
    outbox: Outbox | None = None,
    *,
    dry_run: bool = True,
    since: dt.datetime | None = None,
) -> AccrualReport:
    """One accrual per `accrual` entry of marts.cashback_ledger (occurred at or after
    `since`, all when None) into the outbox; a dry run only counts them."""
    from activation.planner import iter_accruals, plan_accruals

    planned = plan_accruals(client, since=since)
    if dry_run:
        return AccrualReport(dry_run=True, accruals=len(planned))
    if outbox is None:
        raise ValueError("enqueueing accruals needs the outbox")
    enqueued: EnqueueResult = outbox.enqueue(list(iter_accruals(planned)))
    return AccrualReport(
        dry_run=False, accruals=len(planned),
        inserted=enqueued.inserted, already_there=enqueued.existing,
    )  # fmt: skip


# --- delivery ----------------------------------------------------------------------------


@dataclass
class DeliverDueReport:
    """A delivery pass: what was sent, opt-outs recorded, log rows, reconciliation."""

    dry_run: bool
    reconciled: ReconcileReport
    outbox: dict[str, dict[str, int]]  # {kind: {state: rows}} after the pass
    delivery: DeliveryReport | None = None  # None in a dry run
    opt_outs_recorded: int = 0
    logged: dict[str, Any] = field(default_factory=dict)

    @property
    def failures(self) -> dict[str, int]:
        """Rows this pass left failed or dead, by state (empty when none, or dry run)."""
        if self.delivery is None:
            return {}
        return {s: n for s, n in self.delivery.states.items() if s in ("failed", "dead") and n}

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "delivery": self.delivery.as_dict() if self.delivery else None,
            "opt_outs_recorded": self.opt_outs_recorded,
            "logged": {k: str(v) if isinstance(v, dt.datetime) else v
                       for k, v in self.logged.items()},
            "outbox": self.outbox,
            "failures": self.failures,
            "reconciled": self.reconciled.summary(),
        }  # fmt: skip


def deliver_due(
    client: Any,
    outbox: Outbox,
    providers: ProvidersConfig,
    *,
    dry_run: bool = True,
    limit: int | None = None,
    kinds: Iterable[Kind] = KINDS,
    already_delivered: AlreadyDelivered | None = None,
    log_since: dt.datetime | None = None,
) -> DeliverDueReport:
    """Deliver what is due, record provider opt-outs, log to ClickHouse, reconcile.

    Live: every due outbox row is sent once, within its provider's crash guarantee
    (`activation.delivery.deliver`;
    `already_delivered` defaults to asking the warehouse's messenger status events);
    opt-outs the providers reported (Telegram blocks, WhatsApp 131050) become messenger
    events, so the planner honours them like an inbound STOP; outbox rows changed since
    `log_since` (all when None) are appended to `activation.message_log` /
    `activation.accrual_log`; and the ledger's records are reconciled with
    marts.cashback_ledger and the outbox. A dry run sends nothing and reconciles the plan
    of accruals with the mart (`reconcile`).
    """
    from activation.activation_log import log_to_warehouse
    from activation.delivery import deliver, messenger_events_lookup

    if dry_run:
        return DeliverDueReport(
            dry_run=True, reconciled=reconcile(client, dry_run=True), outbox=outbox.counts()
        )
    report = deliver(
        outbox, providers, limit=limit, kinds=kinds,
        already_delivered=already_delivered or messenger_events_lookup(client),
    )  # fmt: skip
    recorded = record_opt_outs(client, report.opt_outs)
    logged = log_to_warehouse(client, outbox, since=log_since)
    return DeliverDueReport(
        dry_run=False, reconciled=reconcile(client, outbox, providers),
        outbox=outbox.counts(),
        delivery=report, opt_outs_recorded=recorded, logged=logged,
    )  # fmt: skip


def record_opt_outs(
    client: Any, opt_outs: Sequence[OptOut], *, now: dt.datetime | None = None
) -> int:
    """Provider opt-outs become `block` events in raw.messenger_events (status `opt_out`),
    so `int_opt_outs` and the planner honour them like an inbound STOP.

    One batch per set of idempotency keys: recording the same opt-outs again loads
    nothing. Returns the number of opt-outs given.
    """
    if not opt_outs:
        return 0
    import pandas as pd

    from warehouse.load import load_batch

    now = now or dt.datetime.now(dt.UTC)
    frame = pd.DataFrame(
        {
            "provider": [o.channel for o in opt_outs],
            "event_id": [f"delivery-opt-out:{o.idempotency_key}" for o in opt_outs],
            "event_type": "block",
            "provider_message_id": None,
            "message_id": [o.idempotency_key for o in opt_outs],
            "status": "opt_out",
            "recipient": [o.recipient for o in opt_outs],
            "text": None,
            "error_code": [o.code for o in opt_outs],
            "occurred_at": now,
            "received_at": now,
            "payload": "{}",
        }
    )
    keys = ",".join(sorted(o.idempotency_key for o in opt_outs))
    load_batch(
        client, "messenger_events", frame,
        batch_id=f"delivery-opt-outs/{hashlib.sha256(keys.encode()).hexdigest()[:16]}",
        source="activation.deliveries",
    )  # fmt: skip
    return len(opt_outs)


def reconcile(
    client: Any,
    outbox: Outbox | None = None,
    providers: ProvidersConfig | None = None,
    *,
    dry_run: bool = False,
    ledger_entries: Iterable[Any] | None = None,
) -> ReconcileReport:
    """Cashback accruals reconciled with marts.cashback_ledger (`activation.reconcile`).

    Live: the ledger's own records (listed through `providers`' ledger client, or given
    as `ledger_entries`) against the mart and the outbox's state per key; a ledger that
    cannot be read makes a failed report (`error`), not an exception. Dry run: nothing
    was sent, so the plan of accruals (`planner.plan_accruals`) is checked against the
    mart instead; it needs neither the outbox nor the providers.
    """
    import httpx

    from activation.planner import plan_accruals
    from activation.providers import LedgerProvider
    from activation.reconcile import reconcile_accruals, reconcile_plan, unreadable_ledger

    if dry_run:
        return reconcile_plan(client, plan_accruals(client).to_dict("records"))
    if outbox is None:
        raise ValueError("a live reconciliation needs the outbox")
    if ledger_entries is None:
        if providers is None:
            raise ValueError("a live reconciliation needs the ledger: providers or entries")
        try:
            ledger_entries = LedgerProvider(providers).list_entries()
        except (httpx.HTTPError, RuntimeError, ValueError) as exc:
            return unreadable_ledger(exc)
    return reconcile_accruals(client, outbox, ledger_entries=ledger_entries)


# --- one pass of everything --------------------------------------------------------------


@dataclass
class RunReport:
    """`run_once`: the plan, the accruals and the delivery of one pass."""

    plan: PlanReport
    accruals: AccrualReport
    delivery: DeliverDueReport

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.as_dict(),
            "accruals": self.accruals.as_dict(),
            "delivery": self.delivery.as_dict(),
        }


def run_once(
    client: Any,
    outbox: Outbox,
    triggers: Sequence[AnyTrigger],
    providers: ProvidersConfig,
    *,
    now: dt.datetime,
    dry_run: bool = True,
    horizon: dt.timedelta = DEFAULT_HORIZON,
) -> RunReport:
    """Plan the triggers, enqueue accruals, deliver what is due — in that order."""
    planned = plan(client, triggers, now=now, outbox=outbox, dry_run=dry_run, horizon=horizon)
    accruals = enqueue_accruals(client, outbox, dry_run=dry_run)
    delivered = deliver_due(client, outbox, providers, dry_run=dry_run)
    return RunReport(plan=planned, accruals=accruals, delivery=delivered)


# --- the outbox at a glance --------------------------------------------------------------


def status(outbox: Outbox) -> dict[str, dict[str, int]]:
    """`{kind: {state: rows}}` of the outbox (message and accrual)."""
    return outbox.counts()


@dataclass
class FailureSummary:
    """Outbox rows that failed or went dead: counts by provider and code, examples."""

    rows: list[dict[str, Any]]

    @property
    def failed(self) -> int:
        return sum(r["state"] == State.failed.value for r in self.rows)

    @property
    def dead(self) -> int:
        return sum(r["state"] == State.dead.value for r in self.rows)

    @property
    def by_provider_and_code(self) -> dict[str, int]:
        """`{"<provider>:<error code> (<state>)": rows}`."""
        return dict(Counter(f"{r['provider']}:{r['error_code']} ({r['state']})" for r in self.rows))

    def examples(self, n: int = 5) -> list[str]:
        return [
            f"{r['idempotency_key']}: {r['provider']} {r['error_code']} — {r['last_error']}"
            for r in self.rows[:n]
        ]

    def __bool__(self) -> bool:
        return bool(self.rows)


def failures(
    outbox: Outbox,
    *,
    since: dt.datetime | None = None,
    states: Iterable[State] = (State.failed, State.dead),
    kinds: Iterable[Kind] = KINDS,
) -> FailureSummary:
    """Rows in `states` (failed and dead) changed since `since` (all when None)."""
    states = list(states)
    return FailureSummary(
        [
            row
            for kind in kinds
            for state in states
            for row in outbox.rows(kind, state=state, since=since)
        ]
    )


def dead_letters(
    outbox: Outbox, *, since: dt.datetime | None = None, kinds: Iterable[Kind] = KINDS
) -> list[dict[str, Any]]:
    """Rows that went dead (out of attempts or permanently rejected): they need a human."""
    return failures(outbox, since=since, states=(State.dead,), kinds=kinds).rows
