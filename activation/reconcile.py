"""Reconciliation of cashback accruals: the loyalty ledger's own records, the mart, the outbox.

The planner makes one PlannedAccrual per `accrual` entry of `marts.cashback_ledger`, with
`source_event_id = entry_id` (`partner_id:event_id`) and an idempotency key derived from
it; delivery posts it to the ledger with that key. Live, `reconcile_accruals` compares
three sides by `source_event_id`:

- the ledger's records, as the ledger lists them (`LedgerProvider.list_entries`: dicts
  with `id`, `idempotency_key`, `source_event_id`, `amount`, `currency`) — never the
  outbox's belief of what it sent, which cannot see an accrual the ledger holds twice or
  lost;
- the mart's `accrual` entries (what should have been accrued);
- the outbox's state per key (what is still on its way).

Findings:

- duplicates — one source event accrued by more than one ledger entry (or one key listed
  twice): a double accrual, the failure idempotency exists to prevent;
- missing_in_ledger — a mart accrual with no ledger entry. Still in flight (outbox row
  `planned`/`sending`, or `failed` to be retried) is not a failure; anything else is
  (`sent` but the ledger lacks it, `dead`, permanently failed, never enqueued);
- missing_in_mart — a ledger entry whose mart entry is gone or never existed (extra);
- amount_mismatch — both exist but amount or currency differ.

`outbox_disagrees` lists ledger entries whose key the outbox does not hold as `sent`
(an answer lost in flight, or a key the outbox never made); it is reported, not failed:
delivery replays such keys and the ledger answers with the entry it already holds.

A dry run sends nothing, so there is no ledger side: `reconcile_plan` checks the plan
instead — every mart accrual planned exactly once with the mart's amount and currency,
nothing planned that the mart does not hold.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from activation.contracts import State
from activation.outbox import Outbox

IN_FLIGHT = {State.planned.value, State.sending.value}
# Offending keys named per finding in summaries and check metadata.
FIRST_OFFENDERS = 10

Side = Literal["ledger", "plan"]


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
    idempotency_keys: tuple[str, ...] = ()  # the ledger entries' (or the planned) keys

    def describe(self) -> str:
        """`<source event> key=<key>[,<key>…]` — how a finding names its accrual."""
        keys = ",".join(self.idempotency_keys) or "?"
        return f"{self.source_event_id} key={keys}"


@dataclass
class ReconcileReport:
    """What `reconcile_accruals` / `reconcile_plan` found. `ledger_entries` counts the
    other side's entries: the ledger's (source "ledger") or the plan's (source "plan")."""

    source: Side = "ledger"
    mart_entries: int = 0
    ledger_entries: int = 0
    matched: int = 0
    missing_in_ledger: list[ReconItem] = field(default_factory=list)
    missing_in_mart: list[ReconItem] = field(default_factory=list)
    amount_mismatch: list[ReconItem] = field(default_factory=list)
    duplicates: list[ReconItem] = field(default_factory=list)
    outbox_disagrees: list[ReconItem] = field(default_factory=list)
    error: str = ""  # the ledger could not be read: nothing was compared

    @property
    def in_flight(self) -> list[ReconItem]:
        """Missing in the ledger but still being delivered (planned/sending/failed-retry)."""
        return [i for i in self.missing_in_ledger if _in_flight(i)]

    @property
    def stuck(self) -> list[ReconItem]:
        """Missing in the ledger and not on its way: sent-but-absent, dead, never enqueued."""
        return [i for i in self.missing_in_ledger if not _in_flight(i)]

    @property
    def passed(self) -> bool:
        """No discrepancy other than accruals still in flight (and the ledger was read)."""
        return not (
            self.error or self.stuck or self.missing_in_mart or self.amount_mismatch
            or self.duplicates
        )  # fmt: skip

    def offenders(self, n: int = FIRST_OFFENDERS) -> dict[str, list[str]]:
        """The first `n` accruals of each failing finding, each naming its key(s)."""
        found = {
            "duplicates": self.duplicates,
            "missing_in_ledger": self.stuck,
            "missing_in_mart": self.missing_in_mart,
            "amount_mismatch": self.amount_mismatch,
        }
        return {name: [i.describe() for i in items[:n]] for name, items in found.items() if items}

    def problems(self) -> list[str]:
        """One line per failing finding: count, what it means, the first keys."""
        if self.error:
            return [f"the ledger could not be read: {self.error}"]
        other = "the ledger" if self.source == "ledger" else "the plan"
        meaning = {
            "duplicates": f"accrued more than once in {other}",
            "missing_in_ledger": f"mart accruals missing from {other}"
            + (" (not in flight)" if self.source == "ledger" else ""),
            "missing_in_mart": f"entries of {other} with no mart accrual",
            "amount_mismatch": "amount or currency differs from the mart",
        }
        counts = {
            "duplicates": len(self.duplicates), "missing_in_ledger": len(self.stuck),
            "missing_in_mart": len(self.missing_in_mart),
            "amount_mismatch": len(self.amount_mismatch),
        }  # fmt: skip
        return [
            f"{counts[name]} {meaning[name]}: {', '.join(keys)}"
            + (" …" if counts[name] > len(keys) else "")
            for name, keys in self.offenders(3).items()
        ]

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "passed": self.passed,
            "source": self.source,
            "mart_entries": self.mart_entries,
            "ledger_entries": self.ledger_entries,
            "matched": self.matched,
            "missing_in_ledger": len(self.missing_in_ledger),
            "in_flight": len(self.in_flight),
            "missing_not_in_flight": len(self.stuck),
            "missing_in_mart": len(self.missing_in_mart),
            "amount_mismatch": len(self.amount_mismatch),
            "duplicates": len(self.duplicates),
            "outbox_disagrees": len(self.outbox_disagrees),
        }
        if self.error:
            out["error"] = self.error
        return out


def _in_flight(item: ReconItem) -> bool:
    return item.outbox_state in IN_FLIGHT or (
        item.outbox_state == State.failed.value and item.outbox_reason == "retry"
    )


def mart_accruals(
    client: Any, event_types: Iterable[str] = ("accrual",)
) -> dict[str, tuple[Decimal, str, str]]:
    """`{entry_id: (amount, currency, idempotency key)}` of the mart's entries of
    `event_types`; the key is the one the planner gives the entry's accrual."""
    from activation.planner import key_sql

    key = key_sql("'accrual'", "partner_id", "customer_id", "concat('accrual:', entry_id)")
    rows = client.query(
        f"SELECT entry_id, toString(amount), currency, {key} FROM marts.cashback_ledger "
        "WHERE event_type IN {t:Array(String)}",
        parameters={"t": list(event_types)},
    ).result_rows
    return {str(e): (Decimal(a), str(c), str(k)) for e, a, c, k in rows}


def _compare(
    report: ReconcileReport,
    mart: Mapping[str, tuple[Decimal, str, str]],
    entries: Iterable[Mapping[str, Any]],
    key_field: str,
) -> dict[str, list[Mapping[str, Any]]]:
    """Fill the counts, duplicates, missing_in_mart and amount_mismatch of `report`;
    returns the entries by source event (for the missing side)."""
    by_source: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    by_key: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        by_source[str(entry["source_event_id"])].append(entry)
        if entry.get(key_field):
            by_key[str(entry[key_field])].add(str(entry.get("id")))
    # One key listed by two entries is a double accrual even if a source event id differs.
    key_listed_twice = {k for k, ids in by_key.items() if len(ids) > 1}
    report.mart_entries = len(mart)
    report.ledger_entries = sum(len(v) for v in by_source.values())
    for source_id, group in sorted(by_source.items()):
        first = group[0]
        amount, currency = Decimal(str(first["amount"])), str(first["currency"])
        keys = tuple(dict.fromkeys(str(e.get(key_field) or "?") for e in group))
        mart_amount, mart_currency, _ = mart.get(source_id, (None, None, None))
        item = ReconItem(
            source_id, mart_amount, mart_currency, amount, currency,
            tuple(str(e.get("id")) for e in group), idempotency_keys=keys,
        )  # fmt: skip
        doubled = len(group) > 1 or bool(key_listed_twice.intersection(keys))
        if doubled:
            report.duplicates.append(item)
        amounts = {(Decimal(str(e["amount"])), str(e["currency"])) for e in group}
        if source_id not in mart:
            report.missing_in_mart.append(item)
        elif amounts != {(mart_amount, mart_currency)}:
            report.amount_mismatch.append(item)
        elif not doubled:
            report.matched += 1
    return by_source


def reconcile_accruals(
    client: Any,
    outbox: Outbox,
    *,
    ledger_entries: Iterable[Mapping[str, Any]],
    event_types: Iterable[str] = ("accrual",),
) -> ReconcileReport:
    """The ledger's records against `marts.cashback_ledger` and the outbox (module doc).

    `ledger_entries` are the ledger's own listing (`LedgerProvider.list_entries`)."""
    mart = mart_accruals(client, event_types)
    outbox_rows = {r["source_event_id"]: r for r in outbox.rows("accrual")}
    sent_keys = {
        r["idempotency_key"] for r in outbox_rows.values() if r["state"] == State.sent.value
    }
    report = ReconcileReport(source="ledger")
    ledger = _compare(report, mart, ledger_entries, "idempotency_key")
    for source_id, group in sorted(ledger.items()):
        for entry in group:
            key = entry.get("idempotency_key")
            if key and key not in sent_keys:
                row = outbox_rows.get(source_id)
                report.outbox_disagrees.append(
                    ReconItem(
                        source_id, ledger_amount=Decimal(str(entry["amount"])),
                        ledger_currency=str(entry["currency"]),
                        ledger_entry_ids=(str(entry.get("id")),), idempotency_keys=(str(key),),
                        outbox_state=row["state"] if row else None,
                    )
                )  # fmt: skip
    for source_id, (amount, currency, key) in sorted(mart.items()):
        if source_id not in ledger:
            row = outbox_rows.get(source_id)
            report.missing_in_ledger.append(
                ReconItem(
                    source_id, amount, currency,
                    outbox_state=row["state"] if row else None,
                    outbox_reason=row["reason"] if row else None,
                    idempotency_keys=(str(row["idempotency_key"]) if row else key,),
                )
            )  # fmt: skip
    return report


def reconcile_plan(
    client: Any, planned: Iterable[Mapping[str, Any]], *, event_types: Iterable[str] = ("accrual",)
) -> ReconcileReport:
    """A dry run's plan of accruals against `marts.cashback_ledger`: every mart accrual
    planned exactly once with the mart's amount and currency, nothing else planned.

    `planned` are rows with `idempotency_key`, `source_event_id`, `amount`, `currency`
    (e.g. `planner.plan_accruals(client).to_dict("records")`). Missing accruals are never
    in flight here: a plan that leaves one out has lost it."""
    mart = mart_accruals(client, event_types)
    # Each planned row is its own entry: a key planned twice is two entries, a double.
    rows = [{**row, "id": f"plan[{i}]"} for i, row in enumerate(planned)]
    report = ReconcileReport(source="plan")
    plan = _compare(report, mart, rows, "idempotency_key")
    for source_id, (amount, currency, key) in sorted(mart.items()):
        if source_id not in plan:
            report.missing_in_ledger.append(
                ReconItem(source_id, amount, currency, idempotency_keys=(key,))
            )
    return report


def unreadable_ledger(error: BaseException) -> ReconcileReport:
    """The report when the ledger's listing failed: nothing compared, not passed."""
    return ReconcileReport(source="ledger", error=f"{type(error).__name__}: {error}"[:300])
