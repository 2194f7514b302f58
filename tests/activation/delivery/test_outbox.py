"""The outbox on a real SQLite file and a real PostgreSQL database: idempotent enqueue, claims
with leases, owned completion."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

from activation.contracts import Channel, State
from activation.outbox import Completion, Outbox

from .conftest import NOW, accrual, message


@pytest.fixture
def outbox(store_outbox: Outbox) -> Outbox:
    """Every test here runs on SQLite and on PostgreSQL."""
    return store_outbox


def test_enqueue_is_idempotent_and_never_resets_a_key(outbox: Outbox) -> None:
    plans = [message(1), message(2, Channel.sms), accrual(1)]
    first = outbox.enqueue(plans)
    assert (first.inserted, first.existing) == (3, 0)
    items = outbox.claim("message", 10, run_token="r1:0", lease_s=60)
    assert len(items) == 2
    outbox.complete("message", [Completion(items[0].key, "r1:0", State.sent, provider_ref="x")])

    changed = message(1).model_copy(update={"text": "another text"})
    again = outbox.enqueue([changed, message(2, Channel.sms), accrual(1)])
    assert (again.inserted, again.existing) == (0, 3)
    rows = {r["idempotency_key"]: r for r in outbox.rows("message")}
    assert rows[items[0].key]["state"] == "sent"
    assert rows[items[1].key]["state"] == "sending"  # not re-planned by the second enqueue
    assert rows[message(1).idempotency_key]["payload"]["text"] == message(1).text


def test_holdout_is_stored_skipped_and_never_claimed(outbox: Outbox) -> None:
    result = outbox.enqueue([message(1, holdout=True), message(2)])
    assert result.holdout == 1
    claimed = outbox.claim("message", 10, run_token="r:0", lease_s=60)
    assert [i.key for i in claimed] == [message(2).idempotency_key]
    held = outbox.rows("message", keys=[message(1).idempotency_key])[0]
    assert (held["state"], held["reason"]) == ("skipped", "holdout")


def test_expired_rows_are_swept_to_skipped(outbox: Outbox) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    outbox.enqueue([message(1, expires_at=past), message(2)])
    assert outbox.sweep() == 1
    row = outbox.rows("message", keys=[message(1).idempotency_key])[0]
    assert (row["state"], row["reason"]) == ("skipped", "expired")


def test_claim_is_exclusive_until_the_lease_expires_then_uncertain(outbox: Outbox) -> None:
    outbox.enqueue([message(i) for i in range(5)])
    first = outbox.claim("message", 3, run_token="a:0", lease_s=0.3)
    assert len(first) == 3 and not any(i.uncertain for i in first)
    # The claim was committed: another connection sees the rows in `sending`.
    other = Outbox(outbox.engine.url.render_as_string(hide_password=False))
    assert other.counts()["message"] == {"sending": 3, "planned": 2}
    second = other.claim("message", 10, run_token="b:0", lease_s=60)
    assert {i.key for i in second}.isdisjoint({i.key for i in first}) and len(second) == 2
    time.sleep(0.35)
    third = other.claim("message", 10, run_token="c:0", lease_s=60)
    assert {i.key for i in third} == {i.key for i in first}
    assert all(i.uncertain and i.attempts == 2 for i in third)
    # The crashed owner's late result must not overwrite the new owner's row.
    late = [Completion(i.key, "a:0", State.failed, error_code="late") for i in first]
    assert outbox.complete("message", late) == 0
    done = [Completion(i.key, "c:0", State.sent, provider_ref="m") for i in third]
    assert other.complete("message", done) == 3
    other.dispose()


def test_same_run_never_reclaims_its_own_rows(outbox: Outbox) -> None:
    outbox.enqueue([message(1)])
    assert len(outbox.claim("message", 1, run_token="run1:0", lease_s=0.01)) == 1
    time.sleep(0.05)
    assert outbox.claim("message", 1, run_token="run1:1", lease_s=60) == []
    assert len(outbox.claim("message", 1, run_token="run2:0", lease_s=60)) == 1


def test_claims_take_due_rows_by_priority_then_due_time_batch_after_batch(outbox: Outbox) -> None:
    due = [
        message(i).model_copy(
            update={"priority": i % 3, "send_at": NOW - timedelta(minutes=60 - i)}
        )
        for i in range(12)
    ]
    later = message(99).model_copy(update={"send_at": NOW + timedelta(hours=1)})
    outbox.enqueue([*reversed(due), later])
    first = outbox.claim("message", 5, run_token="r:0", lease_s=60)
    outbox.complete("message", [Completion(i.key, "r:0", State.sent) for i in first])
    rest = outbox.claim("message", 100, run_token="r:1", lease_s=60)
    expected = sorted(due, key=lambda p: (-p.priority, p.send_at))
    assert [i.key for i in first + rest] == [p.idempotency_key for p in expected]


def test_an_outbox_created_before_the_claim_order_index_gets_it(outbox: Outbox) -> None:
    def indexes() -> set[str]:
        return {i["name"] for i in inspect(outbox.engine).get_indexes("outbox_messages")}

    assert "ix_outbox_messages_claim_order" in indexes()
    with outbox.engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_outbox_messages_claim_order")
    assert "ix_outbox_messages_claim_order" not in indexes()
    reopened = Outbox(outbox.engine.url.render_as_string(hide_password=False))
    assert "ix_outbox_messages_claim_order" in indexes()
    outbox.enqueue([message(1)])
    assert len(reopened.claim("message", 5, run_token="r:0", lease_s=60)) == 1
    reopened.dispose()


def test_requeue_moves_only_dead_rows_back_to_planned_and_records_it(outbox: Outbox) -> None:
    dead_msg, sent_msg, dead_acc = message(1), message(2), accrual(1)
    outbox.enqueue([dead_msg, sent_msg, dead_acc, message(3)])
    for kind in ("message", "accrual"):
        items = outbox.claim(kind, 10, run_token=f"r-{kind}:0", lease_s=60)
        done = [
            Completion(i.key, f"r-{kind}:0", State.sent, provider_ref="ok")
            if i.key == sent_msg.idempotency_key
            else Completion(i.key, f"r-{kind}:0", State.dead, reason="permanent",
                            provider="whatsapp", error_code="131026",
                            last_error="message undeliverable")
            for i in items
            if i.key != message(3).idempotency_key
        ]  # fmt: skip
        outbox.complete(kind, done)
    in_flight = message(3).idempotency_key  # still `sending`: not dead, must stay as it is
    before = {r["idempotency_key"]: r for r in outbox.rows("message")}

    requeued = outbox.requeue(
        [dead_msg.idempotency_key, sent_msg.idempotency_key, in_flight,
         dead_acc.idempotency_key, "no-such-key"]
    )  # fmt: skip
    assert requeued == sorted([dead_msg.idempotency_key, dead_acc.idempotency_key])
    row = outbox.rows("message", keys=[dead_msg.idempotency_key])[0]
    assert (row["state"], row["reason"], row["attempts"]) == ("planned", "requeued", 0)
    assert row["next_attempt_at"] is not None and row["lease_until"] is None
    assert row["version"] == before[dead_msg.idempotency_key]["version"] + 1
    assert "requeued" in row["last_error"] and "131026 message undeliverable" in row["last_error"]
    assert outbox.rows("accrual")[0]["state"] == "planned"
    after = {r["idempotency_key"]: r for r in outbox.rows("message")}
    for key in (sent_msg.idempotency_key, in_flight):
        assert after[key] == before[key]  # untouched: same state, version, everything

    # Requeued rows are due again: the next claim takes them, with fresh attempts.
    claimed = outbox.claim("message", 10, run_token="r2:0", lease_s=60)
    assert [(i.key, i.attempts) for i in claimed] == [(dead_msg.idempotency_key, 1)]
    assert outbox.requeue([dead_msg.idempotency_key]) == []  # now `sending`: not dead
    assert outbox.requeue([]) == []
