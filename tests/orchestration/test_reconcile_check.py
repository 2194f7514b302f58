"""The `accruals_reconciled` check: ERROR severity in live and dry runs, failing on a
planted double accrual and a planted missing one in the ledger stand-in (and on a plan
that lost an accrual), with the counts and the offending keys in its metadata."""

from __future__ import annotations

import httpx
from dagster import AssetCheckSeverity

from activation import run
from activation.outbox import Outbox
from activation.planner import plan_accruals
from activation.reconcile import reconcile_plan
from orchestration.defs.activation.checks import accruals_reconciled
from simulation.providers import TOKENS, StandinCluster
from tests.activation.conftest import client, fx  # noqa: F401 - fixtures used by name
from tests.activation.delivery.conftest import (  # noqa: F401 - fixtures used by name
    _cluster,
    fast_config,
    jsonl_dir,
    outbox,
    standins,
)
from tests.activation.planner.conftest import Fixtures
from tests.activation.test_reconcile_ledger import _keys, _mart_accrual


def _offending(check) -> dict[str, list[str]]:
    return check.metadata["offending_keys"].value


def test_planted_double_and_missing_accruals_fail_the_check_as_errors(
    client,  # noqa: F811
    fx: Fixtures,  # noqa: F811
    outbox: Outbox,  # noqa: F811
    standins: StandinCluster,  # noqa: F811
) -> None:
    for i in range(3):
        _mart_accrual(fx, f"ev{i}")
    config = fast_config(standins)
    run.enqueue_accruals(client, outbox, dry_run=False)
    delivered = run.deliver_due(client, outbox, config, dry_run=False)
    clean = accruals_reconciled(delivered.reconciled, dry_run=False)
    assert clean.passed and clean.severity == AssetCheckSeverity.ERROR
    assert clean.metadata["summary"].value["matched"] == 3
    keys = _keys(outbox)

    # Double: ev0 accrued again under another key.
    entry = next(
        e for e in httpx.get(f"{standins.urls['ledger']}/v1/accruals").json()
        if e["source_event_id"] == "P0001:ev0"
    )  # fmt: skip
    posted = httpx.post(
        f"{standins.urls['ledger']}/v1/accruals",
        headers={"Idempotency-Key": "dup-ev0", "Authorization": f"Bearer {TOKENS['ledger']}"},
        json={k: entry[k] for k in ("customer_id", "phone", "amount", "currency",
                                    "source_event_id")},
    )  # fmt: skip
    assert posted.status_code == 201 and entry["idempotency_key"] == keys["P0001:ev0"]
    double = accruals_reconciled(run.reconcile(client, outbox, config), dry_run=False)
    assert not double.passed and double.severity == AssetCheckSeverity.ERROR
    assert _offending(double) == {"duplicates": [f"P0001:ev0 key={keys['P0001:ev0']},dup-ev0"]}
    assert double.metadata["summary"].value["duplicates"] == 1
    assert "P0001:ev0" in (double.description or "")

    # Missing: the ledger loses ev2 (the outbox holds it as sent). The double stays.
    state = standins.states["ledger"]
    with state.lock:
        del state.results[keys["P0001:ev2"]]
    both = accruals_reconciled(run.reconcile(client, outbox, config), dry_run=False)
    assert not both.passed and both.severity == AssetCheckSeverity.ERROR
    assert _offending(both)["missing_in_ledger"] == [f"P0001:ev2 key={keys['P0001:ev2']}"]
    assert "P0001:ev2" in both.metadata["problems"].value


def test_the_dry_run_check_is_an_error_and_passes_only_on_a_complete_plan(
    client,  # noqa: F811
    fx: Fixtures,  # noqa: F811
) -> None:
    for i in range(2):
        _mart_accrual(fx, f"ev{i}")
    ok = accruals_reconciled(run.reconcile(client, dry_run=True), dry_run=True)
    assert ok.passed and ok.severity == AssetCheckSeverity.ERROR
    assert ok.metadata["compared_with"].value == "plan"

    plan = plan_accruals(client).to_dict("records")
    lost = accruals_reconciled(reconcile_plan(client, plan[1:]), dry_run=True)
    assert not lost.passed and lost.severity == AssetCheckSeverity.ERROR
    key = f"{plan[0]['source_event_id']} key={plan[0]['idempotency_key']}"
    assert _offending(lost) == {"missing_in_ledger": [key]}
