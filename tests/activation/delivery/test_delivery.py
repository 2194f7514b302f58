"""Delivery against the real stand-ins: exactly-once effects under faults, opt-outs, limits."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime

import pytest

from activation.contracts import Channel
from activation.delivery import deliver
from activation.outbox import Outbox
from simulation.providers import StandinCluster, delivered_lookup

from .conftest import accrual, all_effects, fast_config, message, mixed_plans


def test_mixed_run_sends_everything_once_and_records_provider_ids(
    standins: StandinCluster, outbox: Outbox
) -> None:
    plans = mixed_plans(30, 10)
    outbox.enqueue(plans)
    report = deliver(outbox, fast_config(standins))
    assert report.states["sent"] == 40 and report.claimed == 40
    assert all_effects(standins) == {p.idempotency_key: 1 for p in plans}
    assert all(r["provider_message_id"] for r in outbox.rows("message"))
    assert {r["ledger_entry_id"][:3] for r in outbox.rows("accrual")} == {"le_"}
    wa = standins.admin("whatsapp").requests()[0]
    assert wa["key"] and wa["status"] == 200
    # A second run finds nothing to do and sends nothing.
    again = deliver(outbox, fast_config(standins))
    assert again.claimed == 0 and sum(all_effects(standins).values()) == 40


def test_429_storm_is_waited_out_as_told(standins: StandinCluster, outbox: Outbox) -> None:
    admin = standins.admin("telegram")
    admin.set_faults(script=["429", "429", "429"], retry_after_s=0.3)
    outbox.enqueue([message(1, Channel.telegram)])
    started = time.perf_counter()
    report = deliver(outbox, fast_config(standins, max_attempts_per_run=5))
    elapsed = time.perf_counter() - started
    assert report.states["sent"] == 1
    requests = admin.requests()
    assert [r["status"] for r in requests] == [429, 429, 429, 200]
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(requests)]
    assert all(gap >= 0.29 for gap in gaps), gaps  # retry_after honoured every time
    assert elapsed >= 0.9


def test_5xx_then_success_gives_one_effect(standins: StandinCluster, outbox: Outbox) -> None:
    standins.admin("sms").set_faults(script=["500", "503"])
    outbox.enqueue([message(1, Channel.sms)])
    report = deliver(outbox, fast_config(standins))
    assert report.states["sent"] == 1 and report.http_requests == 3
    assert standins.admin("sms").effects() == {message(1).idempotency_key: 1}


def test_ledger_timeout_after_commit_gives_one_accrual(
    standins: StandinCluster, outbox: Outbox
) -> None:
    ledger = standins.admin("ledger")
    ledger.set_faults(script=["timeout"], timeout_s=1.0)
    outbox.enqueue([accrual(1)])
    report = deliver(outbox, fast_config(standins, http_timeout_s=0.4))
    key = accrual(1).idempotency_key
    assert report.states["sent"] == 1 and report.replayed == 1
    assert ledger.effects() == {key: 1}
    first, second = ledger.requests(key)
    assert first["effect"] and not second["effect"]  # the retry was a replay
    row = outbox.rows("accrual")[0]
    assert row["ledger_entry_id"] == ledger.lookup(key)["provider_message_id"]


@pytest.mark.parametrize("provider", ["sms", "ledger", "whatsapp"])
def test_connection_closed_after_the_work_gives_one_effect(
    standins: StandinCluster, outbox: Outbox, provider: str
) -> None:
    admin = standins.admin(provider)
    admin.set_faults(script=["drop"])
    plan = accrual(1) if provider == "ledger" else message(1, Channel(provider))
    outbox.enqueue([plan])
    report = deliver(
        outbox, fast_config(standins), already_delivered=delivered_lookup(standins.urls)
    )
    assert report.states["sent"] == 1
    assert admin.effects() == {plan.idempotency_key: 1}
    if provider == "whatsapp":  # no native idempotency: the lookup decided
        assert report.confirmed_by_lookup == 1 and len(admin.requests()) == 1
    else:  # the provider deduped the resend on our key
        assert report.replayed == 1 and len(admin.requests()) == 2


def test_without_a_lookup_an_unknown_whatsapp_outcome_is_resent(
    standins: StandinCluster, outbox: Outbox
) -> None:
    """The documented residual risk, measured: no hook → the resend is a second message."""
    standins.admin("whatsapp").set_faults(script=["drop"])
    outbox.enqueue([message(1)])
    report = deliver(outbox, fast_config(standins))
    assert report.ambiguous_resends == 1
    assert standins.admin("whatsapp").effects() == {message(1).idempotency_key: 2}


def test_reused_key_with_a_different_amount_is_refused_and_recorded(
    standins: StandinCluster, outbox: Outbox, tmp_path
) -> None:
    outbox.enqueue([accrual(1, "12.30")])
    deliver(outbox, fast_config(standins))
    # Another store re-plans the same key with another amount (a planner bug, a restore).
    other = Outbox(f"sqlite:///{tmp_path / 'other.db'}")
    other.enqueue([accrual(1, "99.00")])
    report = deliver(other, fast_config(standins))
    row = other.rows("accrual")[0]
    assert (row["state"], row["reason"], row["error_code"]) == (
        "failed", "permanent", "idempotency_key_reused",
    )  # fmt: skip
    assert row["next_attempt_at"] is None
    assert report.error_codes == {"ledger:idempotency_key_reused": 1}
    assert standins.admin("ledger").effects() == {accrual(1).idempotency_key: 1}
    other.dispose()


def test_telegram_block_is_an_opt_out_and_a_permanent_failure(
    standins: StandinCluster, outbox: Outbox
) -> None:
    blocked, fine = message(1, Channel.telegram), message(2, Channel.telegram)
    standins.admin("telegram").set_faults(blocked=[blocked.recipient])
    outbox.enqueue([blocked, fine])
    report = deliver(outbox, fast_config(standins))
    rows = {r["idempotency_key"]: r for r in outbox.rows("message")}
    row = rows[blocked.idempotency_key]
    assert (row["state"], row["error_code"]) == ("failed", "blocked")
    assert rows[fine.idempotency_key]["state"] == "sent"
    assert [(o.recipient, o.code, o.customer_id) for o in report.opt_outs] == [
        (blocked.recipient, "blocked", blocked.customer_id)
    ]
    # Permanent: a later run does not try again.
    assert deliver(outbox, fast_config(standins)).claimed == 0


def test_whatsapp_permanent_error_keeps_the_provider_code(
    standins: StandinCluster, outbox: Outbox
) -> None:
    standins.admin("whatsapp").set_faults(undeliverable=[message(1).recipient])
    outbox.enqueue([message(1)])
    report = deliver(outbox, fast_config(standins))
    row = outbox.rows("message")[0]
    assert (row["state"], row["error_code"]) == ("failed", "131026")
    assert report.error_codes == {"whatsapp:131026": 1} and not report.opt_outs


def test_holdout_and_expired_are_never_contacted(standins: StandinCluster, outbox: Outbox) -> None:
    held, expired = message(1, holdout=True), message(2, expires_at=datetime.now(UTC))
    outbox.enqueue([held, expired, message(3)])
    time.sleep(0.01)
    report = deliver(outbox, fast_config(standins))
    assert report.states["sent"] == 1 and report.expired_swept == 1
    rows = {r["idempotency_key"]: (r["state"], r["reason"]) for r in outbox.rows("message")}
    assert rows[held.idempotency_key] == ("skipped", "holdout")
    assert rows[expired.idempotency_key] == ("skipped", "expired")
    contacted = {r["key"] for r in standins.admin("whatsapp").requests()}
    assert contacted == {message(3).idempotency_key}


def test_bounded_attempts_then_failed_then_dead(standins: StandinCluster, outbox: Outbox) -> None:
    standins.admin("sms").set_faults(script=["503"] * 10)
    outbox.enqueue([message(1, Channel.sms)])
    config = fast_config(standins, max_attempts_per_run=2, max_total_attempts=2)
    first = deliver(outbox, config)
    row = outbox.rows("message")[0]
    assert first.states["failed"] == 1 and first.http_requests == 2
    assert (row["state"], row["error_code"], row["attempts"]) == ("failed", "server_error", 1)
    assert row["next_attempt_at"] is not None
    second = deliver(outbox, config)
    assert second.states["dead"] == 1
    assert outbox.rows("message")[0]["state"] == "dead"
    assert len(standins.admin("sms").requests()) == 4


def test_rate_limit_paces_requests(standins: StandinCluster, outbox: Outbox) -> None:
    n = 61
    outbox.enqueue([message(i) for i in range(n)])
    # Few connections: each new one's first request is slow (connect), which bunches the
    # first arrivals and would skew a short measurement.
    deliver(outbox, fast_config(standins, whatsapp_rate_per_s=80.0, concurrency=4))
    times = sorted(r["t"] for r in standins.admin("whatsapp").requests())
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert len(times) == n
    assert 80 * 0.85 <= rate <= 80 * 1.15, rate  # the benchmark measures ±5% over 400-800
