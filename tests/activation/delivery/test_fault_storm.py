"""Provider fault storms (issue #17.2): delivery against stand-ins that time out after
committing, reset and drop connections, answer 5xx after doing the work, rate-limit with
Retry-After and answer slowly — checked from the stand-ins' own records, not the client's.

The storm's size keeps `make test` short (50 ms client timeouts, 0.2 s Retry-After);
`benchmarks.bench_delivery` runs a larger one.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest

from activation.contracts import Channel
from activation.delivery import deliver
from activation.outbox import Outbox, utcnow
from activation.providers import parse_retry_after
from simulation.providers import TOKENS, StandinCluster
from simulation.providers.apps import AFTER_COMMIT, FAULTS, Faults
from simulation.providers.storm import (
    audit,
    deliver_until_final,
    retry_after_audit,
    storm_config,
    storm_plan,
)

from .conftest import fast_config, message, mixed_plans

AMBIGUOUS_AT_LEAST = 1000


def test_storm_accrues_exactly_once_and_honours_retry_after(
    standins: StandinCluster, outbox: Outbox
) -> None:
    for provider, faults in storm_plan(seed=17).items():
        standins.admin(provider).set_faults(**faults)
    plans = mixed_plans(600, 800)
    outbox.enqueue(plans)

    config = storm_config(standins)
    reports = deliver_until_final(outbox, config, standins)
    result = audit(standins, outbox, plans)

    assert result["ambiguous_outcomes"] >= AMBIGUOUS_AT_LEAST, result["faults"]
    assert set(result["faults"]) == set(FAULTS)  # every kind of fault happened
    # The client saw at least every outcome the providers made unknown (plus its own
    # timeouts under load and the 5xx it cannot tell from a committed one).
    assert sum(r.ambiguous_outcomes for r in reports) >= result["ambiguous_outcomes"]
    assert result["double_accruals"] == 0 and result["accruals_missing"] == 0
    assert result["accruals_exactly_once"] is True
    assert result["sms_not_once"] == 0 and result["whatsapp_not_once"] == 0
    telegram = result["telegram"]
    assert telegram["over_two"] == 0 and telegram["duplicates_unexplained"] == 0
    assert result["unfinished"] == 0 and result["lost"] == 0
    assert result["unplanned_effects"] == 0
    limited = sum(a["responses_429"] - a["unconfirmed"] for a in result["retry_after"].values())
    assert limited > 0 and result["retry_after_violations"] == 0, result["retry_after"]
    assert result["ok"] is True
    # The outbox agrees: accruals all sent with the ledger's entry id.
    accruals = outbox.rows("accrual")
    assert {r["state"] for r in accruals} == {"sent"}
    assert all(r["ledger_entry_id"] for r in accruals)


def _req(seq: int, t0: float, key: str, conn: str, status: int = 201) -> dict[str, Any]:
    return {"seq": seq, "t0": t0, "t": t0, "key": key, "status": status, "conn": conn,
            "retry_after": 0.2 if status == 429 else None}  # fmt: skip


def test_retry_after_audit_catches_a_client_that_does_not_wait() -> None:
    """The storm's Retry-After check can fail: a follow-up on the 429's connection or for
    its key inside the pause, any request to the provider while the client must have known
    of the 429 — but not a request already on its way when the client learnt of it, nor
    anything after a 429 the client never read (it timed out and closed the connection)."""
    r429 = _req(1, 10.0, "a", "c1", 429)
    too_soon = [r429, _req(2, 10.01, "b", "c2"), _req(3, 10.1, "c", "c3"),
                _req(4, 10.15, "a", "c1"), _req(5, 10.25, "d", "c2")]  # fmt: skip
    found = retry_after_audit(too_soon, in_flight_s=0.05)
    assert sorted(v["seq"] for v in found["violations"]) == [3, 4]
    assert found["in_flight"] == 1 and found["min_follow_up_gap_s"] == 0.15
    # A busy client learnt of the 429 late (its retry came at 10.29, so by 10.09): what it
    # wrote before arrives until 10.14; what came after that broke the pause.
    lagging = [r429, _req(2, 10.09, "b", "c2"), _req(3, 10.12, "c", "c3"),
               _req(4, 10.29, "a", "c1")]  # fmt: skip
    assert retry_after_audit(lagging, in_flight_s=0.05)["violations"] == []
    broke = retry_after_audit([*lagging, _req(5, 10.17, "d", "c2")], in_flight_s=0.05)
    assert [v["seq"] for v in broke["violations"]] == [5]
    # The 429's connection was never used again: the client did not read it.
    unread = retry_after_audit([r429, _req(2, 10.05, "a", "c9")], in_flight_s=0.05)
    assert (unread["unconfirmed"], unread["violations"]) == (1, [])


def test_stand_in_faults_after_commit_and_seeded_plans(standins: StandinCluster) -> None:
    ledger = standins.admin("ledger")
    ledger.set_faults(script=["reset", "committed_503", "drop", "429"], retry_after_s=0.2)
    url = standins.urls["ledger"] + "/v1/accruals"
    headers = {"Authorization": f"Bearer {TOKENS['ledger']}", "Idempotency-Key": "k1"}
    body = {"customer_id": "c", "amount": "1.00", "currency": "RUB", "source_event_id": "e"}
    outcomes = []
    for _ in range(5):
        try:
            answer = httpx.post(url, json=body, headers=headers)
            outcomes.append(answer.status_code)
        except httpx.ReadError:  # the RST
            outcomes.append("reset")
        except httpx.RemoteProtocolError:  # the answer's body never came
            outcomes.append("drop")
    assert outcomes == ["reset", 503, "drop", 429, 201]
    log = ledger.requests()
    assert [r["effect"] for r in log] == [True, False, False, False, False]  # then replays
    assert [r["retry_after"] for r in log] == [None, None, None, 0.2, None]
    assert ledger.effects() == {"k1": 1}

    # The same seed draws the same faults; a drawn 5xx repeats for `burst` requests.
    rates = {"503": 0.2, "timeout": 0.3, "reset": 0.1}
    draws = [Faults(seed=5, rates=rates, burst=3) for _ in range(2)]
    sequences = [[f.next() for _ in range(200)] for f in draws]
    assert sequences[0] == sequences[1]
    assert Counter(sequences[0]).keys() == {None, "503", "timeout", "reset"}
    runs = "".join("5" if f == "503" else "." for f in sequences[0]).split(".")
    assert all(len(run) % 3 == 0 for run in runs if run)
    with pytest.raises(ValueError, match="unknown faults"):
        Faults(rates={"melt": 0.1})
    assert set(AFTER_COMMIT) < set(FAULTS)


def test_a_5xx_after_commit_is_not_resent_blind(standins: StandinCluster, outbox: Outbox) -> None:
    """WhatsApp has no idempotency: a 5xx may follow its commit, so the resend asks first."""
    standins.admin("whatsapp").set_faults(script=["committed_502"])
    plan = message(1, Channel.whatsapp)
    outbox.enqueue([plan])
    lookup = standins.admin("whatsapp").lookup
    report = deliver(outbox, fast_config(standins), already_delivered=lambda k: lookup(k)["found"])
    assert report.states["sent"] == 1 and report.confirmed_by_lookup == 1
    assert report.ambiguous_outcomes == 1
    assert standins.admin("whatsapp").effects() == {plan.idempotency_key: 1}


def test_a_long_retry_after_pauses_every_sender(standins: StandinCluster, outbox: Outbox) -> None:
    """A pause longer than a row may wait sends the run's rows back without a request
    (before: only the limited row went back; the others were sent straight into the
    pause), and the run ends after a pause it could wait out. A row sent back unsent
    spends no attempt (before: every deferral did, so a long pause could kill rows)."""
    standins.admin("sms").set_faults(script=["429"], retry_after_s=30)
    outbox.enqueue([message(i, Channel.sms) for i in range(5)])
    config = fast_config(standins, concurrency=1, max_retry_wait_s=0.2, max_total_attempts=1)
    started = time.perf_counter()
    report = deliver(outbox, config)
    assert time.perf_counter() - started >= 0.2
    assert len(standins.admin("sms").requests()) == 1
    assert report.states["dead"] == 1 and report.states["failed"] == 4
    assert report.http_requests == 1
    rows = outbox.rows("message")
    deferred = [r for r in rows if r["state"] == "failed"]
    assert [r["attempts"] for r in deferred] == [0] * 4
    assert all(r["next_attempt_at"] >= utcnow() + timedelta(seconds=25) for r in deferred)
    assert {r["error_code"] for r in rows} == {"rate_limited"}


def test_retry_after_values_providers_send() -> None:
    assert parse_retry_after("1.5") == 1.5 and parse_retry_after("-3") == 0.0
    assert parse_retry_after("nan") is None and parse_retry_after("inf") is None
    # An HTTP date in RFC 5322's "-0000" zone parses without a zone: it raised TypeError.
    assert 3000 < parse_retry_after(_http_date(3600, zone="-0000")) <= 3600
    assert 3000 < parse_retry_after(_http_date(3600, zone="GMT")) <= 3600


def _http_date(seconds_ahead: float, zone: str) -> str:
    when = utcnow() + timedelta(seconds=seconds_ahead)
    return when.strftime(f"%a, %d %b %Y %H:%M:%S {zone}")


def test_a_request_waiting_for_the_rate_limiter_does_not_go_into_a_pause(
    standins: StandinCluster, outbox: Outbox
) -> None:
    """The pause is checked right before a request is written: the second message waits
    for the rate limiter (0.25 s) while the first one's 429 pauses WhatsApp for 0.6 s.
    (Before, its gate check came first and it was sent 0.35 s into the pause.)"""
    admin = standins.admin("whatsapp")
    admin.set_faults(script=["429"], retry_after_s=0.6)
    outbox.enqueue([message(1), message(2)])
    config = fast_config(standins, whatsapp_rate_per_s=4.0, rate_burst=1, concurrency=2)
    report = deliver(outbox, config)
    assert report.states["sent"] == 2
    log = sorted(admin.requests(), key=lambda r: r["t0"])
    assert [r["status"] for r in log] == [429, 200, 200]
    assert log[1]["t0"] - log[0]["t"] >= 0.6 - 0.005  # clocks: the loop's timers, time.time
    assert retry_after_audit(log, in_flight_s=0.05)["violations"] == []
