"""Activation checks on `activation/deliveries`: failing deliveries, accrual reconciliation.

`delivery_failures` is evaluated by every delivery run and, between runs, by the
`failing_deliveries` sensor (from the outbox alone).
"""

from __future__ import annotations

from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
)

from activation.reconcile import ReconcileReport
from activation.run import FailureSummary
from warehouse.privacy import mask_text

DELIVERIES = AssetKey(["activation", "deliveries"])
DELIVERY_FAILURES = "delivery_failures"
ACCRUALS_RECONCILED = "accruals_reconciled"

CHECK_SPECS = [
    AssetCheckSpec(ACCRUALS_RECONCILED, asset=DELIVERIES,
                   description="The loyalty ledger's own records match marts.cashback_ledger "
                   "and the outbox: no accrual twice, none missing unless in flight, none "
                   "extra, same amounts (dry run: the plan of accruals against the mart)."),
    AssetCheckSpec(DELIVERY_FAILURES, asset=DELIVERIES,
                   description="No delivery failed or went dead (also reported between runs "
                   "by the failing_deliveries sensor)."),
]  # fmt: skip


def delivery_failures(failed_or_dead: dict[str, int]) -> AssetCheckResult:
    """Of one delivery run: warns when it left rows failed or dead."""
    return AssetCheckResult(
        asset_key=DELIVERIES,
        check_name=DELIVERY_FAILURES,
        passed=not failed_or_dead,
        severity=AssetCheckSeverity.WARN,
        metadata={"failed_or_dead": MetadataValue.json(failed_or_dead)},
    )


def accruals_reconciled(report: ReconcileReport, *, dry_run: bool) -> AssetCheckResult:
    """ERROR in both modes. Live: the ledger's own records against the mart and the
    outbox (no double accrual, none missing unless in flight, none extra, same amounts).
    Dry run: nothing is sent, so the plan of accruals against the mart (every accrual
    planned once, nothing else). Metadata: the counts and the first offending keys."""
    metadata: dict[str, Any] = {
        "dry_run": dry_run,
        "compared_with": report.source,
        "summary": MetadataValue.json(report.summary()),
        "offending_keys": MetadataValue.json(report.offenders()),
    }
    problems = report.problems()
    if problems:
        metadata["problems"] = MetadataValue.md("\n".join(f"- {p}" for p in problems))
    return AssetCheckResult(
        asset_key=DELIVERIES,
        check_name=ACCRUALS_RECONCILED,
        passed=report.passed,
        severity=AssetCheckSeverity.ERROR,
        metadata=metadata,
        description="; ".join(problems) or None,
    )


def failures_evaluation(summary: FailureSummary) -> AssetCheckEvaluation:
    """Rows the outbox holds as failed or dead (the sensor's view), as a failed check."""
    return AssetCheckEvaluation(
        asset_key=DELIVERIES,
        check_name=DELIVERY_FAILURES,
        passed=not summary,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "failed": summary.failed,
            "dead": summary.dead,
            "by_provider_and_code": MetadataValue.json(summary.by_provider_and_code),
            # Provider error bodies may quote the recipient: masked like every shown value.
            "examples": MetadataValue.md(
                "\n".join(f"- {mask_text(e)}" for e in summary.examples())
            ),
        },
    )
