"""Activation assets (group `activation`).

- `activation/<trigger>`: one per trigger declared in activation/triggers/. Triggers
  selected together are planned together, so priorities and frequency caps are
  resolved across them; caps also count what earlier runs planned or sent. Live, the
  plan goes into the outbox (idempotent by key); in dry run (the default, and what
  `make run` does) it is computed, counted and sampled, and nothing is stored.
- `activation/cashback_accruals`: one accrual per ledger accrual entry, into the outbox.
- `activation/deliveries`: sends what is due in the outbox, exactly once per key,
  records provider opt-outs (Telegram blocks) as messenger events, appends the
  activation log to ClickHouse, and checks accruals against the cashback ledger.
"""

import datetime as dt
import hashlib
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from activation.trigger_specs import load_triggers
from orchestration.assets.ml import SCORES
from orchestration.resources import WarehouseResource
from revisit.settings import get_settings

SETTINGS = get_settings()
GROUP = "activation"
ACCRUALS = AssetKey(["activation", "cashback_accruals"])
DELIVERIES = AssetKey(["activation", "deliveries"])
TRIGGERS = load_triggers()
INPUTS = [
    AssetKey(["marts", "dim_customers"]),
    AssetKey(["marts", "customer_rfm"]),
    AssetKey(["marts", "cashback_balances"]),
    AssetKey(["marts", "partner_offer_conversion"]),
    AssetKey(["intermediate", "int_message_sends"]),
    SCORES,
]


def trigger_key(name: str) -> AssetKey:
    return AssetKey(["activation", name])


class ActivationConfig(Config):
    now: str = ""
    """Planning time, ISO 8601 with zone (e.g. 2026-11-01T08:00:00+00:00); empty = now."""
    dry_run: bool = True
    """Plan, count and sample without sending or storing anything."""


def planning_time(config: ActivationConfig) -> dt.datetime:
    if not config.now:
        return dt.datetime.now(dt.UTC)
    moment = dt.datetime.fromisoformat(config.now)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@multi_asset(
    specs=[
        AssetSpec(trigger_key(t.name), group_name=GROUP, deps=INPUTS,
                  kinds={"clickhouse", "python"}, description=t.description or t.kind)
        for t in TRIGGERS
    ],
    can_subset=True,
)  # fmt: skip
def activation(
    context: AssetExecutionContext, config: ActivationConfig, warehouse: WarehouseResource
) -> Any:
    """Plan the selected triggers; counts per decision, channel and holdout as metadata."""
    selected = [t for t in TRIGGERS if trigger_key(t.name) in context.selected_asset_keys]
    now = planning_time(config)
    if config.dry_run:
        yield from _dry_run(context, selected, now, warehouse)
    else:
        yield from _plan_into_outbox(selected, now, warehouse)


def _plan_into_outbox(selected: list, now: dt.datetime, warehouse: WarehouseResource) -> Any:
    from activation.outbox import Outbox
    from activation.planner import plan

    outbox = Outbox(SETTINGS.state_dsn)
    try:
        with warehouse.get_client() as client:
            result = plan(client, selected, now=now)
        enqueued = outbox.enqueue([*result.messages(), *result.holdout_messages()], now=now)
    finally:
        outbox.dispose()
    for trigger in selected:
        rows = result.counts[result.counts.trigger == trigger.name]
        counts = rows.groupby("decision").n.sum().astype(int).to_dict()
        yield MaterializeResult(
            asset_key=trigger_key(trigger.name),
            metadata={
                "dry_run": False,
                "now": now.isoformat(),
                "run_id": result.run_id,
                "planned": counts.get("planned", 0),
                "holdout": counts.get("holdout", 0),
                "excluded": sum(n for d, n in counts.items() if d not in ("planned", "holdout")),
                "decisions": MetadataValue.json(counts),
                "skipped": result.skipped.get(trigger.name, ""),
                "outbox_inserted": enqueued.inserted,
                "outbox_already_there": enqueued.existing,
            },
        )


def _dry_run(
    context: AssetExecutionContext, selected: list, now: dt.datetime, warehouse: WarehouseResource
) -> Any:
    from activation.dry_run import dry_run

    with warehouse.get_client() as client:
        report = dry_run(client, selected, now)
    context.log.info("\n" + report.render())
    for trigger in selected:
        decisions = {
            c.key.get("decision", "?"): c.n
            for c in report.by_trigger
            if c.key.get("trigger") == trigger.name
        }
        samples = [s.text for s in report.samples if s.trigger == trigger.name][:3]
        yield MaterializeResult(
            asset_key=trigger_key(trigger.name),
            metadata={
                "dry_run": True,
                "now": now.isoformat(),
                "planned": decisions.get("planned", 0),
                "holdout": decisions.get("holdout", 0),
                "excluded": sum(n for d, n in decisions.items() if d not in ("planned", "holdout")),
                "decisions": MetadataValue.json(decisions),
                "skipped": report.skipped.get(trigger.name, ""),
                "samples": MetadataValue.md("\n".join(f"- {s}" for s in samples) or "none"),
            },
        )


class OutboxConfig(Config):
    dry_run: bool = True
    """Count what would be enqueued or sent; store and send nothing."""


@multi_asset(
    specs=[AssetSpec(ACCRUALS, group_name=GROUP, kinds={"python"},
                     deps=[AssetKey(["marts", "cashback_ledger"])],
                     description="Cashback accruals to push to the loyalty ledger.")],
)  # fmt: skip
def cashback_accruals(
    context: AssetExecutionContext, config: OutboxConfig, warehouse: WarehouseResource
) -> Any:
    """One PlannedAccrual per accrual entry of marts.cashback_ledger, into the outbox."""
    from activation.outbox import Outbox
    from activation.planner import iter_accruals, plan_accruals

    with warehouse.get_client() as client:
        planned = plan_accruals(client)
    metadata: dict[str, Any] = {"dry_run": config.dry_run, "accruals": len(planned)}
    if not config.dry_run:
        outbox = Outbox(SETTINGS.state_dsn)
        try:
            enqueued = outbox.enqueue(list(iter_accruals(planned)))
        finally:
            outbox.dispose()
        metadata.update(outbox_inserted=enqueued.inserted, outbox_already_there=enqueued.existing)
    yield MaterializeResult(asset_key=ACCRUALS, metadata=metadata)


@multi_asset(
    specs=[AssetSpec(DELIVERIES, group_name=GROUP, kinds={"python", "clickhouse"},
                     deps=[*(trigger_key(t.name) for t in TRIGGERS), ACCRUALS],
                     description="What the outbox delivered, failed or skipped.")],
    check_specs=[AssetCheckSpec("accruals_reconciled", asset=DELIVERIES,
                                description="Accruals the ledger confirmed match "
                                "marts.cashback_ledger: none missing, none twice."),
                 AssetCheckSpec("delivery_failures", asset=DELIVERIES,
                                description="No delivery failed or went dead (also "
                                "reported between runs by the failing_deliveries sensor).")],
)  # fmt: skip
def deliveries(
    context: AssetExecutionContext, config: OutboxConfig, warehouse: WarehouseResource
) -> Any:
    """Deliver what is due, persist provider opt-outs, log to ClickHouse, reconcile."""
    from activation.activation_log import log_to_warehouse
    from activation.delivery import deliver, messenger_events_lookup
    from activation.outbox import Outbox
    from activation.reconcile import reconcile_accruals

    outbox = Outbox(SETTINGS.state_dsn)
    try:
        with warehouse.get_client() as client:
            if config.dry_run:
                yield MaterializeResult(
                    asset_key=DELIVERIES,
                    metadata={"dry_run": True, "outbox": MetadataValue.json(outbox.counts())},
                )
                reconciled = reconcile_accruals(client, outbox)
                failures: dict[str, int] = {}
            else:
                report = deliver(
                    outbox, SETTINGS.providers(),
                    already_delivered=messenger_events_lookup(client),
                )  # fmt: skip
                record_opt_outs(client, report.opt_outs)
                failures = {
                    state: n for state, n in report.states.items() if state in ("failed", "dead")
                }
                logged = log_to_warehouse(client, outbox)
                reconciled = reconcile_accruals(client, outbox)
                yield MaterializeResult(
                    asset_key=DELIVERIES,
                    metadata={
                        "dry_run": False,
                        "report": MetadataValue.json(report.as_dict()),
                        "opt_outs": len(report.opt_outs),
                        "logged": MetadataValue.json({k: str(v) for k, v in logged.items()}),
                        "outbox": MetadataValue.json(outbox.counts()),
                    },
                )
    finally:
        outbox.dispose()
    yield AssetCheckResult(
        asset_key=DELIVERIES,
        check_name="delivery_failures",
        passed=not failures,
        severity=AssetCheckSeverity.WARN,
        metadata={"failed_or_dead": MetadataValue.json(failures)},
    )
    yield AssetCheckResult(
        asset_key=DELIVERIES,
        check_name="accruals_reconciled",
        passed=reconciled.passed,
        metadata={"summary": MetadataValue.json(reconciled.summary())},
    )


def record_opt_outs(client: Any, opt_outs: list) -> None:
    """Provider opt-outs (Telegram blocks, WhatsApp 131050) become messenger events, so
    int_opt_outs and the planner honour them like an inbound STOP."""
    if not opt_outs:
        return
    import pandas as pd

    from warehouse.load import load_batch

    now = dt.datetime.now(dt.UTC)
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


ACTIVATION_ASSETS = [activation, cashback_accruals, deliveries]
