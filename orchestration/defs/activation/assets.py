"""Activation assets (group `activation`).

- `activation/<trigger>`: one per trigger declared in activation/triggers/. Triggers
  selected together are planned together, so priorities and frequency caps are
  resolved across them; caps also count what earlier runs planned or sent. Live, the
  plan goes into the outbox (idempotent by key); in dry run (the default, and what
  `make run` does) it is computed, counted and sampled, and nothing is stored.
- `activation/cashback_accruals`: one accrual per ledger accrual entry, into the outbox.
- `activation/deliveries`: sends what is due in the outbox, exactly once per key,
  records provider opt-outs as messenger events, appends the activation log to
  ClickHouse, and reconciles the ledger's own records with the cashback ledger mart
  and the outbox (in dry run: the plan of accruals with the mart).

The work is `activation.run` (`plan`, `enqueue_accruals`, `deliver_due`); these assets
hand it a warehouse client, the outbox and the providers' config, and report its
results as metadata and checks.
"""

from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from activation.run import (
    PlanReport,
    deliver_due,
    enqueue_accruals,
    open_outbox,
    plan,
    planning_time,
)
from activation.trigger_specs import load_triggers
from orchestration.defs.activation import checks
from orchestration.defs.activation.checks import DELIVERIES
from orchestration.defs.ml.assets import SCORES, UPLIFT
from orchestration.defs.models.assets import exposure_keys, model_key
from orchestration.resources import WarehouseResource
from revisit.settings import get_settings

GROUP = "activation"
ACCRUALS = AssetKey(["activation", "cashback_accruals"])
TRIGGERS = load_triggers()
# What the planner reads: the dbt exposure `activation_planner`, and the revisit scores.
PLANNER_INPUTS = [*exposure_keys("activation_planner"), SCORES, UPLIFT]
# What delivery and reconciliation read: the dbt exposure `activation_delivery`.
DELIVERY_INPUTS = exposure_keys("activation_delivery")


def trigger_key(name: str) -> AssetKey:
    return AssetKey(["activation", name])


class ActivationConfig(Config):
    now: str = ""
    """Planning time, ISO 8601 with zone (e.g. 2026-11-01T08:00:00+00:00); empty = now."""
    dry_run: bool = True
    """Plan, count and sample without sending or storing anything."""


@multi_asset(
    specs=[
        AssetSpec(trigger_key(t.name), group_name=GROUP, deps=PLANNER_INPUTS,
                  kinds={"clickhouse", "python"}, description=t.description or t.kind,
                  metadata={"kind": t.kind, "planning_job": t.schedule.job if t.schedule
                            else "(on demand)"})
        for t in TRIGGERS
    ],
    can_subset=True,
)  # fmt: skip
def activation(
    context: AssetExecutionContext, config: ActivationConfig, warehouse: WarehouseResource
) -> Any:
    """Plan the selected triggers; counts per decision, channel and holdout as metadata."""
    selected = [t for t in TRIGGERS if trigger_key(t.name) in context.selected_asset_keys]
    now = planning_time(config.now)
    with warehouse.get_client() as client:
        if config.dry_run:
            report = plan(client, selected, now=now, dry_run=True)
        else:
            with open_outbox(get_settings().state_dsn) as outbox:
                report = plan(client, selected, now=now, outbox=outbox, dry_run=False)
    if report.detail:
        context.log.info("\n" + report.detail)
    yield from _plan_results(report)


def _plan_results(report: PlanReport) -> Any:
    for outcome in report.triggers:
        metadata: dict[str, Any] = {
            "dry_run": report.dry_run,
            "now": report.now.isoformat(),
            "run_id": report.run_id,
            "planned": outcome.planned,
            "holdout": outcome.holdout,
            "excluded": outcome.excluded,
            "decisions": MetadataValue.json(outcome.decisions),
            "excluded_by_reason": MetadataValue.json(outcome.excluded_by_reason),
            "skipped": outcome.skipped,
            "samples": MetadataValue.md("\n".join(f"- {s}" for s in outcome.samples) or "none"),
        }
        if not report.dry_run:
            metadata.update(
                outbox_inserted=report.inserted, outbox_already_there=report.already_there
            )
        yield MaterializeResult(asset_key=trigger_key(outcome.trigger), metadata=metadata)


class OutboxConfig(Config):
    dry_run: bool = True
    """Count what would be enqueued or sent; store and send nothing."""


@multi_asset(
    specs=[AssetSpec(ACCRUALS, group_name=GROUP, kinds={"python"},
                     deps=[model_key("cashback_ledger")],
                     description="Cashback accruals to push to the loyalty ledger.")],
)  # fmt: skip
def cashback_accruals(
    context: AssetExecutionContext, config: OutboxConfig, warehouse: WarehouseResource
) -> Any:
    """One accrual per accrual entry of the cashback ledger mart, into the outbox."""
    with warehouse.get_client() as client:
        if config.dry_run:
            report = enqueue_accruals(client, dry_run=True)
        else:
            with open_outbox(get_settings().state_dsn) as outbox:
                report = enqueue_accruals(client, outbox, dry_run=False)
    metadata: dict[str, Any] = {"dry_run": report.dry_run, "accruals": report.accruals}
    if not report.dry_run:
        metadata.update(outbox_inserted=report.inserted, outbox_already_there=report.already_there)
    yield MaterializeResult(asset_key=ACCRUALS, metadata=metadata)


@multi_asset(
    specs=[AssetSpec(DELIVERIES, group_name=GROUP, kinds={"python", "clickhouse"},
                     deps=[*(trigger_key(t.name) for t in TRIGGERS), ACCRUALS,
                           *DELIVERY_INPUTS],
                     description="What the outbox delivered, failed or skipped.")],
    check_specs=checks.CHECK_SPECS,
)  # fmt: skip
def deliveries(
    context: AssetExecutionContext, config: OutboxConfig, warehouse: WarehouseResource
) -> Any:
    """Deliver what is due, persist provider opt-outs, log to ClickHouse, reconcile."""
    settings = get_settings()
    if not config.dry_run:
        # Never send a published development token to a provider off loopback.
        settings.refuse_dev_secrets(providers=("whatsapp", "telegram", "sms", "ledger"))
    with open_outbox(settings.state_dsn) as outbox, warehouse.get_client() as client:
        report = deliver_due(client, outbox, settings.providers(), dry_run=config.dry_run)
    metadata: dict[str, Any] = {
        "dry_run": report.dry_run,
        "outbox": MetadataValue.json(report.outbox),
    }
    if report.delivery is not None:
        metadata.update(
            report=MetadataValue.json(report.delivery.as_dict()),
            opt_outs=report.opt_outs_recorded,
            logged=MetadataValue.json({k: str(v) for k, v in report.logged.items()}),
        )
    yield MaterializeResult(asset_key=DELIVERIES, metadata=metadata)
    yield checks.delivery_failures(report.failures)
    for problem in report.reconciled.problems():
        context.log.error(f"accruals_reconciled: {problem}")
    yield checks.accruals_reconciled(report.reconciled, dry_run=report.dry_run)


ASSETS = [activation, cashback_accruals, deliveries]
