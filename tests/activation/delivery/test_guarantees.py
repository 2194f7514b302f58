"""The README's "Delivery guarantees", one provider at a time: the delivery process is
killed (SIGKILL) after the provider accepted a request and before the outbox committed
it, then delivery runs again; the stand-in counts what the provider did.

The kill lands in that window by construction: the stand-in's `timeout` fault applies
the effect and then holds the answer back, and the test kills the child as soon as the
effect is recorded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

import warehouse
from activation.contracts import Channel, PlannedAccrual, PlannedMessage, State
from activation.delivery import deliver, messenger_events_lookup
from activation.outbox import Outbox
from revisit.settings import PROJECT_ROOT
from simulation.providers import StandinCluster
from warehouse import contracts

from .conftest import accrual, fast_config, message

LEASE_S = 0.5
STATUS_MART = "marts.fct_messenger_status_events"


@pytest.fixture(scope="module")
def status_events(tmp_path_factory: pytest.TempPathFactory) -> Iterator[warehouse.Client]:
    """A warehouse holding the status mart WhatsApp's crash lookup reads (from its contract)."""
    path = tmp_path_factory.mktemp("guarantees_wh")
    with warehouse.connect(f"chdb://{path}") as client:
        contracts.create_tables(client, [STATUS_MART])
        yield client


def _load_status_webhook(client: warehouse.Client, key: str, wamid: str, to: str) -> None:
    """What ingestion makes of a Cloud API status webhook carrying our
    `biz_opaque_callback_data`: one row of the status mart."""
    now = datetime.now(UTC)
    row = {
        "provider": "whatsapp", "event_id": f"status-{wamid}", "message_id": key,
        "provider_message_id": wamid, "status": "delivered", "recipient": to,
        "error_code": None, "occurred_at": now, "received_at": now,
    }  # fmt: skip
    columns = [name for name, _ in contracts.columns(STATUS_MART)]
    client.insert(STATUS_MART, [[row[c] for c in columns]], column_names=columns)


def _crash_after_acceptance(
    standins: StandinCluster, outbox: Outbox, provider: str, key: str, **config: Any
) -> None:
    """Run delivery in a child; SIGKILL it once `provider` has applied `key`'s effect
    (its answer still held back), then wait until the child's lease has expired."""
    admin = standins.admin(provider)
    before = admin.effects().get(key, 0)
    admin.set_faults(script=["timeout"], timeout_s=1.5)
    settings = fast_config(standins, lease_s=LEASE_S, http_timeout_s=10.0, **config)
    config_json = json.dumps(
        {
            name: value.get_secret_value() if hasattr(value, "get_secret_value") else value
            for name, value in settings.model_dump().items()
        }
    )
    dsn = outbox.engine.url.render_as_string(hide_password=False)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.activation.delivery._child", dsn, config_json,
         json.dumps(standins.urls)],
        cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while admin.effects().get(key, 0) == before:
            assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
            assert time.monotonic() < deadline, "the provider never accepted the request"
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()  # type: ignore[union-attr]
    assert outbox.rows(_kind(provider))[0]["state"] == State.sending  # not committed
    admin.set_faults(script=[])
    time.sleep(LEASE_S + 0.1)


def _kind(provider: str) -> str:
    return "accrual" if provider == "ledger" else "message"


def _plan(provider: str) -> PlannedMessage | PlannedAccrual:
    return accrual(1) if provider == "ledger" else message(1, Channel(provider))


@pytest.mark.parametrize("provider", ["ledger", "sms"])
def test_idempotent_providers_apply_a_crashed_send_exactly_once(
    standins: StandinCluster, outbox: Outbox, provider: str
) -> None:
    plan = _plan(provider)
    outbox.enqueue([plan])
    _crash_after_acceptance(standins, outbox, provider, plan.idempotency_key)

    report = deliver(outbox, fast_config(standins))
    assert (report.recovered, report.replayed, report.states["sent"]) == (1, 1, 1)
    admin = standins.admin(provider)
    assert admin.effects() == {plan.idempotency_key: 1}
    assert len(admin.requests(plan.idempotency_key)) == 2  # resent, deduped on our key
    row = outbox.rows(_kind(provider))[0]
    ref = row["ledger_entry_id"] if provider == "ledger" else row["provider_message_id"]
    assert ref == admin.lookup(plan.idempotency_key)["provider_message_id"]


def test_whatsapp_crash_with_the_status_webhook_loaded_is_not_resent(
    standins: StandinCluster, outbox: Outbox, status_events: warehouse.Client
) -> None:
    plan = message(1, Channel.whatsapp)
    outbox.enqueue([plan])
    _crash_after_acceptance(standins, outbox, "whatsapp", plan.idempotency_key)
    admin = standins.admin("whatsapp")
    wamid = admin.lookup(plan.idempotency_key)["provider_message_id"]
    _load_status_webhook(status_events, plan.idempotency_key, wamid, plan.recipient)

    report = deliver(
        outbox, fast_config(standins), already_delivered=messenger_events_lookup(status_events)
    )
    assert (report.recovered, report.confirmed_by_lookup, report.ambiguous_resends) == (1, 1, 0)
    assert admin.effects() == {plan.idempotency_key: 1}
    assert len(admin.requests(plan.idempotency_key)) == 1
    row = outbox.rows("message")[0]
    assert (row["state"], row["provider_message_id"]) == (State.sent, wamid)


def test_whatsapp_crash_without_the_webhook_is_resent_once_and_says_so(
    standins: StandinCluster, outbox: Outbox, status_events: warehouse.Client
) -> None:
    plan = message(2, Channel.whatsapp)
    outbox.enqueue([plan])
    _crash_after_acceptance(standins, outbox, "whatsapp", plan.idempotency_key)

    report = deliver(
        outbox, fast_config(standins), already_delivered=messenger_events_lookup(status_events)
    )
    assert (report.recovered, report.confirmed_by_lookup, report.ambiguous_resends) == (1, 0, 1)
    assert standins.admin("whatsapp").effects() == {plan.idempotency_key: 2}  # the duplicate
    row = outbox.rows("message")[0]
    assert row["state"] == State.sent
    assert "resent after an unknown outcome" in row["last_error"]


def test_telegram_default_resends_a_crashed_send_once(
    standins: StandinCluster, outbox: Outbox
) -> None:
    plan = message(1, Channel.telegram)
    outbox.enqueue([plan])
    _crash_after_acceptance(standins, outbox, "telegram", plan.idempotency_key)

    report = deliver(outbox, fast_config(standins))
    assert (report.recovered, report.resends_recorded, report.ambiguous_resends) == (1, 1, 1)
    assert +report.states == {"sent": 1}  # marked, then resent in the same run
    assert standins.admin("telegram").effects() == {plan.idempotency_key: 2}
    row = outbox.rows("message")[0]
    assert (row["state"], row["attempts"]) == (State.sent, 3)
    assert "resent after an unknown outcome" in row["last_error"]


def test_telegram_default_never_sends_a_third_time_however_often_it_crashes(
    standins: StandinCluster, outbox: Outbox
) -> None:
    plan = message(1, Channel.telegram)
    key = plan.idempotency_key
    outbox.enqueue([plan])
    _crash_after_acceptance(standins, outbox, "telegram", key)
    _crash_after_acceptance(standins, outbox, "telegram", key)  # killed during the resend
    assert standins.admin("telegram").effects() == {key: 2}

    for _ in range(2):  # later runs: dead-lettered once, then never claimed again
        deliver(outbox, fast_config(standins))
    assert standins.admin("telegram").effects() == {key: 2}
    assert len(standins.admin("telegram").requests(key)) == 2
    row = outbox.rows("message")[0]
    assert (row["state"], row["reason"]) == (State.dead, "ambiguous")
    assert "the one resend (claim 3) has an unknown outcome too" in row["last_error"]


def test_telegram_at_most_once_dead_letters_a_crashed_send(
    standins: StandinCluster, outbox: Outbox
) -> None:
    plan = message(1, Channel.telegram)
    outbox.enqueue([plan])
    policy = {"telegram_crash_policy": "at_most_once"}
    _crash_after_acceptance(standins, outbox, "telegram", plan.idempotency_key, **policy)

    report = deliver(outbox, fast_config(standins, **policy))
    assert (report.recovered, report.ambiguous_dead, report.http_requests) == (1, 1, 0)
    assert +report.states == {"dead": 1}
    assert standins.admin("telegram").effects() == {plan.idempotency_key: 1}
    row = outbox.rows("message")[0]
    assert (row["state"], row["reason"], row["next_attempt_at"]) == (State.dead, "ambiguous", None)
    assert "not resent" in row["last_error"] and "outcome is unknown" in row["last_error"]


@pytest.mark.parametrize("policy", ["resend_once", "at_most_once"])
def test_telegram_lost_answer_inside_a_run_follows_the_same_policy(
    standins: StandinCluster, outbox: Outbox, policy: str
) -> None:
    """A dropped connection after the Bot API accepted is the same unknown as a crash."""
    plan = message(1, Channel.telegram)
    outbox.enqueue([plan])
    standins.admin("telegram").set_faults(script=["drop"])
    report = deliver(outbox, fast_config(standins, telegram_crash_policy=policy))
    effects = standins.admin("telegram").effects()[plan.idempotency_key]
    row = outbox.rows("message")[0]
    if policy == "resend_once":
        assert (effects, row["state"], report.ambiguous_resends) == (2, State.sent, 1)
    else:
        assert (effects, row["state"], row["reason"]) == (1, State.dead, "ambiguous")


def test_a_resend_marker_is_not_a_recovery_or_a_failure_in_the_report(
    standins: StandinCluster, outbox: Outbox
) -> None:
    """Telegram's recorded resend makes two claims of one row; the report counts it once."""
    outbox.enqueue([message(1, Channel.telegram), message(2, Channel.telegram)])
    standins.admin("telegram").set_faults(script=["drop"])
    report = deliver(outbox, fast_config(standins, concurrency=1))
    assert (report.recovered, report.resends_recorded) == (0, 1)
    assert +report.states == {"sent": 2} and report.error_codes == {}
