"""Activation checks on `activation/deliveries`: failing deliveries, accrual reconciliation.

`delivery_failures` is evaluated by every delivery run and, between runs, by the
`failing_deliveries` sensor (from the outbox alone).
"""

from __future__ import annotations

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

DELIVERIES = AssetKey(["activation", "deliveries"])
DELIVERY_FAILURES = "delivery_failures"
ACCRUALS_RECONCILED = "accruals_reconciled"

CHECK_SPECS = [
    AssetCheckSpec(ACCRUALS_RECONCILED, asset=DELIVERIES,
                   description="Accruals the ledger confirmed match marts.cashback_ledger: "
                   "none missing, none twice."),
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
    """ERROR when a live run leaves the ledger and the mart apart. A dry run enqueues and
    sends nothing, so mart accruals it never planned are expected: it only warns."""
    return AssetCheckResult(
        asset_key=DELIVERIES,
        check_name=ACCRUALS_RECONCILED,
        passed=report.passed,
        severity=AssetCheckSeverity.WARN if dry_run else AssetCheckSeverity.ERROR,
        metadata={"dry_run": dry_run, "summary": MetadataValue.json(report.summary())},
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
            "examples": MetadataValue.md("\n".join(f"- {e}" for e in summary.examples())),
        },
    )
