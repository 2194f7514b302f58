"""activation.run on real parts: the embedded warehouse, a SQLite outbox, the provider
stand-ins on 127.0.0.1. Dry runs store and send nothing; live steps are idempotent."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import text

from activation import run
from activation.contracts import Channel, State
from activation.outbox import Outbox
from simulation.providers import StandinCluster
from tests.activation.delivery.conftest import NOW, accrual, fast_config, message
from tests.activation.planner.conftest import Fixtures, trigger, utc

PLAN_AT = utc(2026, 3, 12, 6)


def _birthdays(fx: Fixtures, n: int = 10) -> None:
    """n customers of B1 whose birthday is on the planning day; c00 opted out."""
    for i in range(n):
        fx.customer("B1", f"c{i:02d}", birthday=dt.date(1990, 3, 12), opted_out=i == 0)
    fx.flush()


def _outbox_rows(outbox: Outbox, kind: str = "message") -> int:
    return sum(outbox.counts()[kind].values())


def test_dry_plan_counts_samples_and_stores_nothing(client, fx: Fixtures, outbox: Outbox) -> None:
    _birthdays(fx)
    report = run.plan(client, [trigger()], now=PLAN_AT)
    outcome = report.outcome("birthday_greeting")
    assert report.dry_run and (outcome.planned, outcome.holdout, outcome.excluded) == (9, 0, 1)
    assert outcome.excluded_by_reason == {"opted_out": 1}
    assert outcome.samples and "happy birthday" in outcome.samples[0]
    assert "birthday_greeting" in report.detail and "nothing was sent" in report.detail
    assert report.as_dict()["triggers"][0]["planned"] == 9
    assert _outbox_rows(outbox) == 0
    assert not client.command("EXISTS TABLE activation.send_plan")


def test_live_plan_enqueues_each_key_once(client, fx: Fixtures, outbox: Outbox) -> None:
    _birthdays(fx)
    spec = trigger(holdout_pct=50)
    first = run.plan(client, [spec], now=PLAN_AT, outbox=outbox, dry_run=False)
    outcome = first.outcome("birthday_greeting")
    assert not first.dry_run and outcome.planned + outcome.holdout == 9
    assert 0 < outcome.holdout < 9  # holdout by hash: some of each
    assert first.inserted == 9 and first.already_there == 0
    counts = outbox.counts()["message"]
    assert counts == {"planned": outcome.planned, "skipped": outcome.holdout}

    again = run.plan(client, [spec], now=PLAN_AT, outbox=outbox, dry_run=False)
    assert again.inserted == 0
    assert outbox.counts()["message"] == counts  # the same keys, left as they were


def test_a_live_plan_needs_the_outbox_and_an_aware_time(client) -> None:
    with pytest.raises(ValueError, match="outbox"):
        run.plan(client, [trigger()], now=PLAN_AT, dry_run=False)
    with pytest.raises(ValueError, match="timezone-aware"):
        run.plan(client, [trigger()], now=PLAN_AT.replace(tzinfo=None))


def _ledger_entry(fx: Fixtures, event: str, kind: str = "accrual", amount: str = "12.30") -> None:
    fx.add(
        "marts.cashback_ledger", entry_id=f"P0001:{event}", partner_id="P0001",
        source_event_id=event, event_type=kind, customer_id=f"cust-{event}",
        phone_e164="+79160000001", amount=Decimal(amount), currency="RUB",
        occurred_at=NOW - dt.timedelta(days=1), offer_id=None, loaded_at=NOW,
    )  # fmt: skip


def test_enqueue_accruals_counts_then_enqueues_once(client, fx: Fixtures, outbox: Outbox) -> None:
    for i in range(3):
        _ledger_entry(fx, f"ev{i}")
    _ledger_entry(fx, "ev9", kind="redemption", amount="-5.00")
    fx.flush()
    dry = run.enqueue_accruals(client)
    assert (dry.dry_run, dry.accruals, _outbox_rows(outbox, "accrual")) == (True, 3, 0)
    live = run.enqueue_accruals(client, outbox, dry_run=False)
    assert (live.accruals, live.inserted, live.already_there) == (3, 3, 0)
    again = run.enqueue_accruals(client, outbox, dry_run=False)
    assert (again.inserted, again.already_there) == (0, 3)
    assert outbox.counts()["accrual"] == {"planned": 3}
    with pytest.raises(ValueError, match="outbox"):
        run.enqueue_accruals(client, dry_run=False)


def test_deliver_due_sends_records_opt_outs_logs_and_reconciles(
    client, fx: Fixtures, outbox: Outbox, standins: StandinCluster
) -> None:
    blocked, fine = message(1, Channel.telegram), message(2, Channel.whatsapp)
    standins.admin("telegram").set_faults(blocked=[blocked.recipient])
    # The ledger accrual matches the mart; holdout records are logged, never sent.
    paid = accrual(1, event="P0001:ev1")
    _ledger_entry(fx, "ev1")
    fx.flush()
    outbox.enqueue([blocked, fine, message(3, holdout=True), paid])
    config = fast_config(standins)

    dry = run.deliver_due(client, outbox, config)
    assert dry.dry_run and dry.delivery is None and dry.failures == {}
    assert not standins.admin("whatsapp").requests()
    # A dry run sends nothing: it reconciles the plan of accruals with the mart.
    assert dry.reconciled.source == "plan" and dry.reconciled.passed
    assert dry.reconciled.matched == 1

    report = run.deliver_due(client, outbox, config, dry_run=False)
    assert report.delivery is not None
    assert report.delivery.states["sent"] == 2  # the WhatsApp message and the accrual
    assert report.failures == {"failed": 1}  # the Telegram block, a permanent failure
    assert report.opt_outs_recorded == 1
    assert report.reconciled.passed and report.reconciled.matched == 1
    assert (report.logged["message_log"], report.logged["accrual_log"]) == (3, 1)
    assert report.as_dict()["reconciled"]["passed"] is True
    events = client.query(
        "SELECT recipient, event_type, status, error_code FROM raw.messenger_events FINAL"
    ).result_rows
    assert events == [(blocked.recipient, "block", "opt_out", "blocked")]
    logged = dict(
        client.query("SELECT idempotency_key, state FROM activation.message_log FINAL").result_rows
    )
    assert logged[fine.idempotency_key] == "sent" and logged[blocked.idempotency_key] == "failed"

    # Nothing is due any more: a second pass sends nothing and records nothing new.
    again = run.deliver_due(client, outbox, config, dry_run=False)
    assert again.delivery is not None and again.delivery.claimed == 0
    assert standins.admin("whatsapp").effects() == {fine.idempotency_key: 1}


def test_record_opt_outs_loads_each_set_once(client) -> None:
    from activation.delivery import OptOut

    opt_outs = [
        OptOut(channel="telegram", recipient=f"50000{i}", business_id="B1",
               customer_id=f"c{i}", phone_e164=f"+7916000000{i}", idempotency_key=f"k{i}",
               code="blocked", at=NOW)
        for i in range(2)
    ]  # fmt: skip
    assert run.record_opt_outs(client, []) == 0
    assert run.record_opt_outs(client, opt_outs) == 2
    run.record_opt_outs(client, list(reversed(opt_outs)))  # the same set: loaded once
    assert client.command("SELECT count() FROM raw.messenger_events") == 2


def test_failures_dead_letters_and_status(outbox: Outbox) -> None:
    outbox.enqueue([message(i) for i in range(3)])
    assert run.status(outbox) == {"message": {"planned": 3}, "accrual": {}}
    assert not run.failures(outbox)
    keys = [message(i).idempotency_key for i in range(3)]
    with outbox.engine.begin() as conn:
        for key, state in zip(keys, ("failed", "dead"), strict=False):
            conn.execute(
                text(
                    "UPDATE outbox_messages SET state = :s, provider = 'whatsapp', "
                    "error_code = '131026', last_error = 'undeliverable' "
                    "WHERE idempotency_key = :k"
                ),
                {"s": state, "k": key},
            )
    summary = run.failures(outbox)
    assert (summary.failed, summary.dead) == (1, 1)
    assert summary.by_provider_and_code == {
        "whatsapp:131026 (failed)": 1,
        "whatsapp:131026 (dead)": 1,
    }
    assert summary.examples()[0].endswith("whatsapp 131026 — undeliverable")
    assert [r["idempotency_key"] for r in run.dead_letters(outbox)] == [keys[1]]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert not run.failures(outbox, since=later)
    assert run.status(outbox)["message"] == {"planned": 1, "failed": 1, "dead": 1}
    assert State.dead.value in run.status(outbox)["message"]


def test_run_once_dry_run_touches_nothing(
    client, fx: Fixtures, outbox: Outbox, standins: StandinCluster
) -> None:
    _birthdays(fx, 3)
    _ledger_entry(fx, "ev1")
    fx.flush()
    report = run.run_once(client, outbox, [trigger()], fast_config(standins), now=PLAN_AT)
    assert report.plan.planned == 2 and report.accruals.accruals == 1
    assert report.delivery.delivery is None
    assert run.status(outbox) == {"message": {}, "accrual": {}}
    assert set(report.as_dict()) == {"plan", "accruals", "delivery"}


def test_select_triggers_and_planning_time() -> None:
    every = run.select_triggers()
    assert [s.name for s in every] == sorted(s.name for s in every)
    picked = run.select_triggers(["winback_offer", "birthday_greeting", "winback_offer"])
    assert [s.name for s in picked] == ["birthday_greeting", "winback_offer"]
    with pytest.raises(ValueError, match=r"unknown trigger.*'horoscope'"):
        run.select_triggers(["horoscope"])
    assert run.planning_time("2026-11-01T08:00:00+03:00") == utc(2026, 11, 1, 5)
    assert run.planning_time("2026-11-01T08:00:00") == utc(2026, 11, 1, 8)
    assert run.planning_time("").tzinfo is not None
