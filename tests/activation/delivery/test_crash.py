"""kill -9 in the middle of a delivery run, then rerun: every key's effect exactly once,
except Telegram's, which has no idempotency key: those the kill left unrecorded are resent
once (the default `telegram_crash_policy`; test_guarantees.py covers each provider)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from activation.contracts import State
from activation.delivery import deliver
from activation.outbox import Outbox
from revisit.settings import PROJECT_ROOT
from simulation.providers import StandinCluster, delivered_lookup

from .conftest import all_effects, fast_config, mixed_plans


@pytest.fixture
def outbox(store_outbox: Outbox) -> Outbox:
    """Every test here runs on SQLite and on PostgreSQL."""
    return store_outbox


LEASE_S = 2.0


def _config_json(standins: StandinCluster) -> str:
    config = fast_config(standins, lease_s=LEASE_S, claim_batch=16, concurrency=8)
    return json.dumps(
        {
            name: value.get_secret_value() if hasattr(value, "get_secret_value") else value
            for name, value in config.model_dump().items()
        }
    )


def test_kill_9_mid_run_then_rerun_gives_one_effect_per_key_and_telegram_at_most_two(
    standins: StandinCluster, outbox: Outbox, jsonl_dir: Path
) -> None:
    # Other tests of this session wrote the same JSONL files: read only what follows.
    offsets = {path: path.stat().st_size for path in jsonl_dir.glob("*.jsonl")}
    plans = mixed_plans(300, 60)
    keys = {p.idempotency_key for p in plans}
    telegram = {p.idempotency_key for p in plans if getattr(p, "channel", None) == "telegram"}
    outbox.enqueue(plans)
    for provider in ("whatsapp", "telegram", "sms", "ledger"):
        standins.admin(provider).set_faults(delay_s=0.04)  # slow providers: ~200 msg/s
    dsn = outbox.engine.url.render_as_string(hide_password=False)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.activation.delivery._child", dsn, _config_json(standins),
         json.dumps(standins.urls)],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while sum(all_effects(standins).values()) < 120:
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        assert time.monotonic() < deadline, "the child delivered too little"
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()  # type: ignore[union-attr]
    child.stderr.close()  # type: ignore[union-attr]

    time.sleep(LEASE_S + 0.1)  # the dead run's leases expire; requests it left in flight land
    effects_at_kill = all_effects(standins)
    counts = outbox.counts()
    in_sending = counts["message"].get("sending", 0) + counts["accrual"].get("sending", 0)
    recorded = counts["message"].get("sent", 0) + counts["accrual"].get("sent", 0)
    assert in_sending > 0, counts  # killed mid-run: claimed rows were in flight
    assert 0 < len(effects_at_kill) < len(keys)
    # Work the provider did that the outbox never heard of (effect applied, answer lost):
    unrecorded = set(effects_at_kill) - {
        r["idempotency_key"] for kind in ("message", "accrual") for r in outbox.rows(kind)
        if r["state"] == "sent"
    }  # fmt: skip
    assert len(effects_at_kill) >= recorded
    assert unrecorded, "the kill should leave effects the outbox has not recorded"

    sending_telegram = {
        r["idempotency_key"] for r in outbox.rows("message", state=State.sending)
        if r["channel"] == "telegram"
    }  # fmt: skip
    for provider in ("whatsapp", "telegram", "sms", "ledger"):
        standins.admin(provider).set_faults(delay_s=0.0)
    lookup = delivered_lookup(standins.urls)
    report = deliver(outbox, fast_config(standins), already_delivered=lookup)
    assert report.recovered == in_sending
    # Each effect the outbox had not recorded was recognised (lookup or provider replay)
    # instead of being repeated — but Telegram's, which nothing can recognise.
    assert report.confirmed_by_lookup + report.replayed == len(unrecorded - telegram), (
        report.as_dict(),
        len(unrecorded),
    )
    assert report.resends_recorded == len(sending_telegram)  # each marked, then resent
    print(f"kill: {in_sending} in sending, {len(unrecorded)} effects unrecorded")
    final = outbox.counts()
    assert final == {"message": {"sent": 300}, "accrual": {"sent": 60}}, final
    effects = all_effects(standins)
    assert set(effects) == keys  # none lost
    twice = {k for k, n in effects.items() if n != 1}
    assert twice == unrecorded & telegram, twice  # the one resend Telegram allows
    assert set(effects.values()) <= {1, 2}

    # The stand-ins' JSONL logs (what survives any process) tell the same story.
    logged: dict[str, int] = {}
    for path in jsonl_dir.glob("*.jsonl"):
        with path.open("rb") as handle:
            handle.seek(offsets.get(path, 0))
            lines = handle.read().decode().splitlines()
        for line in lines:
            entry = json.loads(line)
            if entry["effect"] and entry["key"] in keys:
                logged[entry["key"]] = logged.get(entry["key"], 0) + 1
    assert logged == effects
