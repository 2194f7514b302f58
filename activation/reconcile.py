"""Reconciliation: accruals the loyalty ledger confirmed vs `marts.cashback_ledger`.

The planner makes one PlannedAccrual per `accrual` entry of the mart with
`source_event_id = entry_id` (`partner_id:event_id`); delivery pushes it to the ledger and
records the ledger's entry id. This compares the two sides by `source_event_id`:

- missing_in_ledger — a mart accrual with no confirmed ledger entry (with the outbox state
  if it was planned: `planned`/`sending`/`failed` are in flight, `dead`/permanent failures
  need a human, no state = never planned);
- missing_in_mart — a confirmed ledger entry whose mart entry is gone or never existed;
- amount_mismatch — both exist but amount or currency differ;
- duplicates — one source event confirmed by more than one ledger entry (a double accrual:
  the failure idempotency exists to prevent).

`ledger_entries` may come from the ledger itself (e.g. the stand-in's `GET /v1/accruals`:
dicts with `id`, `source_event_id`, `amount`, `currency`); by default the outbox's `sent`
accrual rows stand for what the ledger confirmed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from activation.contracts import State
from activation.outbox import Outbox

IN_FLIGHT = {State.planned.value, State.sending.value}


@dataclass(frozen=True)
class ReconItem:
    source_event_id: str
    mart_amount: Decimal | None = None
    mart_currency: str | None = None
    ledger_amount: Decimal | None = None
    ledger_currency: str | None = None
    ledger_entry_ids: tuple[str, ...] = ()
    outbox_state: str | None = None
    outbox_reason: str | None = None


@dataclass
class ReconcileReport:
    mart_entries: int = 0
    ledger_entries: int = 0
    matched: int = 0
    missing_in_ledger: list[ReconItem] = field(default_factory=list)
    missing_in_mart: list[ReconItem] = field(default_factory=list)
    amount_mismatch: list[ReconItem] = field(default_factory=list)
    duplicates: list[ReconItem] = field(default_factory=list)

    @property
    def in_flight(self) -> list[ReconItem]:
        """Missing in the ledger but still being delivered (planned/sending/failed-retry)."""
        return [i for i in self.missing_in_ledger if _in_flight(i)]

    @property
    def passed(self) -> bool:
        """No discrepancy other than accruals still in flight."""
        stuck = [i for i in self.missing_in_ledger if not _in_flight(i)]
        return not (stuck or self.missing_in_mart or self.amount_mismatch or self.duplicates)

    def summary(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "mart_entries": self.mart_entries,
            "ledger_entries": self.ledger_entries,
            "matched": self.matched,
            "missing_in_ledger": len(self.missing_in_ledger),
            "in_flight": len(self.in_flight),
            "missing_in_mart": len(self.missing_in_mart),
            "amount_mismatch": len(self.amount_mismatch),
            "duplicates": len(self.duplicates),
        }


def _in_flight(item: ReconItem) -> bool:
    return item.outbox_state in IN_FLIGHT or (
        item.outbox_state == State.failed.value and item.outbox_reason == "retry"
    )


def mart_accruals(client: Any, event_types: Iterable[str] = ("accrual",)) -> dict[str, Any]:
    """`{entry_id: (amount, currency)}` of the mart's entries of `event_types`."""
    rows = client.query(
        "SELECT entry_id, toString(amount), currency FROM marts.cashback_ledger "
        "WHERE event_type IN {t:Array(String)}",
        parameters={"t": list(event_types)},
    ).result_rows
    return {str(e): (Decimal(a), str(c)) for e, a, c in rows}


def reconcile_accruals(
    client: Any,
    outbox: Outbox,
    *,
    ledger_entries: Iterable[Mapping[str, Any]] | None = None,
    event_types: Iterable[str] = ("accrual",),
) -> ReconcileReport:
    """Compare confirmed ledger accruals with `marts.cashback_ledger` (see module doc)."""
    mart = mart_accruals(client, event_types)
    outbox_rows = {r["source_event_id"]: r for r in outbox.rows("accrual")}
    if ledger_entries is None:
        ledger_entries = [
            {"id": r["ledger_entry_id"], "source_event_id": r["source_event_id"],
             "amount": r["amount"], "currency": r["currency"]}
            for r in outbox.confirmed_accruals()
        ]  # fmt: skip
    ledger: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for entry in ledger_entries:
        ledger[str(entry["source_event_id"])].append(entry)

    report = ReconcileReport(
        mart_entries=len(mart), ledger_entries=sum(len(v) for v in ledger.values())
    )
    for source_id, entries in sorted(ledger.items()):
        first = entries[0]
        amount, currency = Decimal(str(first["amount"])), str(first["currency"])
        ids = tuple(str(e["id"]) for e in entries)
        mart_amount, mart_currency = mart.get(source_id, (None, None))
        item = ReconItem(source_id, mart_amount, mart_currency, amount, currency, ids)
        if len(entries) > 1:
            report.duplicates.append(item)
        if source_id not in mart:
            report.missing_in_mart.append(item)
        elif (amount, currency) != (mart_amount, mart_currency):
            report.amount_mismatch.append(item)
        elif len(entries) == 1:
            report.matched += 1
    for source_id, (amount, currency) in sorted(mart.items()):
        if source_id not in ledger:
            row = outbox_rows.get(source_id)
            report.missing_in_ledger.append(
                ReconItem(
                    source_id, amount, currency,
                    outbox_state=row["state"] if row else None,
                    outbox_reason=row["reason"] if row else None,
                )
            )  # fmt: skip
    return report
