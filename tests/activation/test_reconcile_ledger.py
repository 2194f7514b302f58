"""Reconciliation reads the ledger's own records (the stand-in on 127.0.0.1, paginated) and
fails on a planted double accrual and a planted missing one, naming the key; a dry run
reconciles the plan of accruals with the mart instead."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import httpx

from activation import run
from activation.outbox import Outbox
from activation.planner import plan_accruals
from activation.providers import LedgerProvider
from activation.reconcile import reconcile_plan
from simulation.providers import TOKENS, StandinCluster
from tests.activation.delivery.conftest import NOW, fast_config
from tests.activation.planner.conftest import Fixtures


def _mart_accrual(fx: Fixtures, event: str, kind: str = "accrual", amount: str = "12.30") -> str:
    fx.add(
        "marts.cashback_ledger", entry_id=f"P0001:{event}", partner_id="P0001",
        source_event_id=event, event_type=kind, customer_id=f"cust-{event}",
        phone_e164="+79160000001", amount=Decimal(amount), currency="RUB",
        occurred_at=NOW - dt.timedelta(days=1), offer_id=None, loaded_at=NOW,
    )  # fmt: skip
    fx.flush()
    return f"P0001:{event}"


def _keys(outbox: Outbox) -> dict[str, str]:
    """`{source_event_id: idempotency key}` of the outbox's accruals."""
    return {r["source_event_id"]: r["idempotency_key"] for r in outbox.rows("accrual")}


def test_clean_delivery_passes_and_a_planted_double_accrual_fails_naming_both_keys(
    client, fx: Fixtures, outbox: Outbox, standins: StandinCluster
) -> None:
    for i in range(5):
        _mart_accrual(fx, f"ev{i}")
    _mart_accrual(fx, "ev9", kind="redemption", amount="-5.00")  # not an accrual: ignored
    config = fast_config(standins)
    run.enqueue_accruals(client, outbox, dry_run=False)
    clean = run.deliver_due(client, outbox, config, dry_run=False).reconciled
    assert clean.passed and clean.source == "ledger", clean.problems()
    assert (clean.mart_entries, clean.ledger_entries, clean.matched) == (5, 5, 5)
    assert not clean.outbox_disagrees and clean.problems() == []

    # The listing pages: 5 entries at 2 a page is 3 pages, linked by cursor.
    ledger = f"{standins.urls['ledger']}/v1/accruals"
    first = httpx.get(ledger, params={"limit": 2})
    assert len(first.json()) == 2 and "starting_after" in first.links["next"]["url"]
    entries = LedgerProvider(config).list_entries(page_size=2)
    assert len({e["id"] for e in entries}) == 5
    assert {e["source_event_id"]: e["idempotency_key"] for e in entries} == _keys(outbox)
    assert httpx.get(ledger, params={"limit": 0}).status_code == 400

    # A second writer posts ev3's accrual again under another key: the ledger takes it.
    doubled = "P0001:ev3"
    original = _keys(outbox)[doubled]
    body = next(e for e in entries if e["source_event_id"] == doubled)
    again = httpx.post(
        ledger,
        headers={"Idempotency-Key": "second-writer-ev3", "Authorization":
                 f"Bearer {TOKENS['ledger']}"},
        json={k: body[k] for k in ("customer_id", "phone", "amount", "currency",
                                   "source_event_id")},
    )  # fmt: skip
    assert again.status_code == 201
    report = run.reconcile(client, outbox, config)
    assert not report.passed and report.matched == 4
    assert [i.source_event_id for i in report.duplicates] == [doubled]
    assert report.duplicates[0].idempotency_keys == (original, "second-writer-ev3")
    assert report.offenders() == {"duplicates": [f"{doubled} key={original},second-writer-ev3"]}
    assert report.problems()[0].startswith("1 accrued more than once in the ledger: P0001:ev3")
    # The outbox never made the second key: reported, and the double is what fails.
    assert [i.idempotency_keys for i in report.outbox_disagrees] == [("second-writer-ev3",)]


def test_a_missing_accrual_fails_naming_its_key_unless_it_is_in_flight(
    client, fx: Fixtures, outbox: Outbox, standins: StandinCluster
) -> None:
    for i in range(3):
        _mart_accrual(fx, f"ev{i}")
    config = fast_config(standins)
    run.enqueue_accruals(client, outbox, dry_run=False)
    assert run.deliver_due(client, outbox, config, dry_run=False).reconciled.passed

    # A new mart accrual, enqueued but not delivered yet, is in flight: not a failure.
    _mart_accrual(fx, "ev3")
    run.enqueue_accruals(client, outbox, dry_run=False)
    pending = run.reconcile(client, outbox, config)
    assert pending.passed and [i.source_event_id for i in pending.in_flight] == ["P0001:ev3"]

    # The ledger loses ev1, which the outbox holds as sent: the old outbox-only view
    # could not see this.
    lost = "P0001:ev1"
    state = standins.states["ledger"]
    with state.lock:
        del state.results[_keys(outbox)[lost]]
    report = run.reconcile(client, outbox, config)
    assert not report.passed
    assert [(i.source_event_id, i.outbox_state) for i in report.stuck] == [(lost, "sent")]
    assert report.offenders() == {"missing_in_ledger": [f"{lost} key={_keys(outbox)[lost]}"]}

    # A mart accrual never enqueued (not in flight) is missing too, named by the key the
    # planner would give it.
    never = _mart_accrual(fx, "ev4")
    report = run.reconcile(client, outbox, config)
    planned_key = plan_accruals(client).set_index("source_event_id").idempotency_key[never]
    assert {i.source_event_id: i.outbox_state for i in report.stuck} == {lost: "sent", never: None}
    assert f"{never} key={planned_key}" in report.offenders()["missing_in_ledger"]
    assert report.summary()["missing_not_in_flight"] == 2 and report.summary()["in_flight"] == 1


def test_an_unreadable_ledger_fails_the_reconciliation(
    client, fx: Fixtures, outbox: Outbox, standins: StandinCluster
) -> None:
    _mart_accrual(fx, "ev0")
    wrong = fast_config(standins, ledger_base_url=f"{standins.urls['ledger']}/nowhere")
    report = run.reconcile(client, outbox, wrong)
    assert not report.passed and "404" in report.error
    assert report.problems() == [f"the ledger could not be read: {report.error}"]


def test_dry_run_reconciles_the_plan_with_the_mart(client, fx: Fixtures) -> None:
    for i in range(3):
        _mart_accrual(fx, f"ev{i}")
    dry = run.reconcile(client, dry_run=True)  # no outbox, no providers
    assert dry.passed and dry.source == "plan" and (dry.mart_entries, dry.matched) == (3, 3)

    plan = plan_accruals(client).to_dict("records")
    dropped = plan[1]
    missing = reconcile_plan(client, [plan[0], plan[2]])
    assert not missing.passed
    expected = f"{dropped['source_event_id']} key={dropped['idempotency_key']}"
    assert missing.offenders() == {"missing_in_ledger": [expected]}
    assert missing.problems() == [f"1 mart accruals missing from the plan: {expected}"]

    twice = reconcile_plan(client, [*plan, plan[0]])
    assert [i.source_event_id for i in twice.duplicates] == [plan[0]["source_event_id"]]
    other = reconcile_plan(client, [{**plan[0], "amount": Decimal("99.00")}, *plan[1:]])
    assert [i.source_event_id for i in other.amount_mismatch] == [plan[0]["source_event_id"]]
    extra = reconcile_plan(client, [*plan, {**plan[0], "source_event_id": "P0001:nope",
                                            "idempotency_key": "k-nope"}])  # fmt: skip
    assert [i.describe() for i in extra.missing_in_mart] == ["P0001:nope key=k-nope"]
    assert not (twice.passed or other.passed or extra.passed)
