"""Two delivery worker processes at once on one state store (PostgreSQL and SQLite): each
row is claimed by exactly one of them, and each key has exactly one effect."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from activation.outbox import Outbox
from revisit.settings import PROJECT_ROOT
from simulation.providers import StandinCluster

from .conftest import all_effects, fast_config, mixed_plans


@pytest.fixture
def outbox(store_outbox: Outbox) -> Outbox:
    return store_outbox


def test_two_workers_at_once_share_the_outbox_without_claiming_a_row_twice(
    standins: StandinCluster, outbox: Outbox, tmp_path: Path
) -> None:
    plans = mixed_plans(300, 60)
    keys = {p.idempotency_key for p in plans}
    outbox.enqueue(plans)
    for provider in ("whatsapp", "telegram", "sms", "ledger"):
        # Slow enough that both workers are claiming while the other holds rows.
        standins.admin(provider).set_faults(delay_s=0.01)
    config = fast_config(standins, claim_batch=16, concurrency=8)
    config_json = json.dumps(
        {
            name: value.get_secret_value() if hasattr(value, "get_secret_value") else value
            for name, value in config.model_dump().items()
        }
    )
    dsn = outbox.engine.url.render_as_string(hide_password=False)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    argv = [sys.executable, "-m", "tests.activation.delivery._child", dsn, config_json,
            json.dumps(standins.urls), str(barrier)]  # fmt: skip
    workers = [
        subprocess.Popen(
            argv, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    # Both have imported everything and opened the store: start them at the same moment.
    deadline = time.monotonic() + 60
    while len(list(barrier.glob("ready-*"))) < 2:
        assert all(w.poll() is None for w in workers), [w.communicate() for w in workers]
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.01)
    (barrier / "go").touch()
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    claimed = [int(r["claimed"]) for r in reports]
    print(f"claimed per worker: {claimed}")
    assert all(n > 0 for n in claimed), claimed  # they really worked side by side
    assert sum(claimed) == len(keys)  # no row claimed twice, none left
    assert outbox.counts() == {"message": {"sent": 300}, "accrual": {"sent": 60}}
    rows = [r for kind in ("message", "accrual") for r in outbox.rows(kind)]
    assert {r["attempts"] for r in rows} == {1}
    assert len({r["run_token"].split(":")[0] for r in rows}) == 2
    # Telegram has no idempotency key: a row sent by both workers would show twice here.
    effects = all_effects(standins)
    assert set(effects) == keys and set(effects.values()) == {1}
