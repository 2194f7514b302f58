"""Ingestion checks: the share of each raw table's rows that went to quarantine."""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey

# Share of a table's rows that may go to quarantine before its check warns.
QUARANTINE_WARN_RATE = 0.05
QUARANTINE_CHECK = "quarantine_rate"


def raw_key(table: str) -> AssetKey:
    """The key of the ingestion asset that writes `raw.<table>` (dbt sources use it too)."""
    return AssetKey(["raw", table])


def quarantine_check(table: str) -> AssetCheckSpec:
    return AssetCheckSpec(
        name=QUARANTINE_CHECK,
        asset=raw_key(table),
        description=f"Rows rejected by validation stay under {QUARANTINE_WARN_RATE:.0%}.",
    )


def quarantine_result(
    table: str, loaded: int, quarantined: int, unreadable_files: int
) -> AssetCheckResult:
    """Warns when more than QUARANTINE_WARN_RATE of the rows, or any file, was rejected."""
    rate = quarantined / (loaded + quarantined) if loaded + quarantined else 0.0
    return AssetCheckResult(
        asset_key=raw_key(table),
        check_name=QUARANTINE_CHECK,
        passed=rate <= QUARANTINE_WARN_RATE and not unreadable_files,
        severity=AssetCheckSeverity.WARN,
        metadata={"quarantine_rate": rate, "rows_quarantined": quarantined,
                  "unreadable_files": unreadable_files},
    )  # fmt: skip
