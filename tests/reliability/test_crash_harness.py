"""The random-kill crash harness (`simulation.crash`), short run: ingestion killed at three
seeded random moments (CRM API, file drops, spool, message export, partner feeds in one
child), each rerun to completion, nothing lost or duplicated in raw and the warehouse
readable. The full run (≥ 20 kills per area, dbt and activation too) is `make bench`
(`benchmarks/bench_crash.py`).

The last tests show the checks can fail: a planted duplicate and a planted loss in raw,
and stand-in effects beyond each provider's guarantee.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import warehouse
from simulation.crash.harness import (
    Findings,
    check_deliveries,
    compare_raw,
    raw_snapshot,
    run_harness,
    trial_settings,
)

KILLS, SEED = 3, 5


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict]]:
    root = tmp_path_factory.mktemp("crash")
    result = run_harness(root, kills=KILLS, seed=SEED, customers=100, areas=("ingestion",))
    yield root, result


def test_random_kills_of_ingestion_lose_and_duplicate_nothing(short_run) -> None:
    _, result = short_run
    (area,) = result["areas"]
    assert area["problems"] == []
    assert (area["lost"], area["duplicated"]) == (0, 0)
    # KILLS trials, each killed once, some a second time during their first rerun.
    assert area["warehouse_ok"] == area["trials"] == KILLS <= area["kills"]
    assert area["reruns"] >= area["kills"]
    assert all(0 <= f < 1 for f in area["kill_fractions"])


def _planted(root: Path, name: str, sql: str) -> dict[str, Any]:
    """A copy of the reference warehouse with `sql` applied, as the harness sees it."""
    trial = root / "planted" / name
    # The engine's directory links tables to their data relatively: copy the links.
    reference = root / "ingestion" / "reference" / "warehouse"
    shutil.copytree(reference, trial / "warehouse", symlinks=True)
    with warehouse.connect(trial_settings(trial).warehouse_dsn) as client:
        client.command(sql)
        return raw_snapshot(client)


def test_the_raw_check_sees_a_duplicated_and_a_lost_source_row(short_run) -> None:
    root, _ = short_run
    with warehouse.connect(trial_settings(root / "ingestion" / "reference").warehouse_dsn) as c:
        reference = raw_snapshot(c)
    # The same source row loaded again by a second batch: a duplicate until merged away.
    twice = _planted(
        root, "twice",
        "INSERT INTO raw.crm_appointments SELECT * REPLACE ('again' AS _batch_id) "
        "FROM raw.crm_appointments LIMIT 1",
    )  # fmt: skip
    found = Findings()
    compare_raw(reference, twice, found)
    assert (found.duplicated, found.lost) == (1, 0), found.details
    gone = _planted(
        root, "gone",
        "DELETE FROM raw.partner_events WHERE event_id IN "
        "(SELECT event_id FROM raw.partner_events LIMIT 1)",
    )  # fmt: skip
    found = Findings()
    compare_raw(reference, gone, found)
    assert (found.duplicated, found.lost) == (0, 1), found.details


def _row(key: str, channel: str | None, state: str, note: str = "") -> dict[str, Any]:
    return {"idempotency_key": key, "channel": channel, "state": state, "reason": None,
            "last_error": note, "expires_at": datetime.now(UTC) + timedelta(hours=1)}  # fmt: skip


def test_the_delivery_check_holds_each_provider_to_its_guarantee() -> None:
    note = "resent after an unknown outcome (no record of it found): may be a duplicate"
    rows = {
        "message": [_row("wa-noted", "whatsapp", "sent", note), _row("wa-silent", "whatsapp",
                    "sent"), _row("sms-1", "sms", "sent"), _row("tg-lost", "telegram", "sent")],
        "accrual": [_row("acc-1", None, "sent")],
    }  # fmt: skip
    logged = {kind: {r["idempotency_key"]: "sent" for r in rs} for kind, rs in rows.items()}
    reference = {
        "rows": rows,
        "effects": {"whatsapp": {"wa-noted": 1, "wa-silent": 1}, "sms": {"sms-1": 1},
                    "telegram": {"tg-lost": 1}, "ledger": {"acc-1": 1}},
    }  # fmt: skip
    got = {
        "rows": rows, "logged": logged,
        "effects": {"whatsapp": {"wa-noted": 2, "wa-silent": 2}, "sms": {"sms-1": 1},
                    "telegram": {}, "ledger": {"acc-1": 2}},
    }  # fmt: skip
    found = Findings()
    check_deliveries(reference, got, found, datetime.now(UTC), crashes=1)
    # The ledger twice and WhatsApp's unnoted second send break the guarantee; WhatsApp's
    # noted resend is the documented one; Telegram's sent row without an effect is lost.
    assert (found.double_effects, found.documented_resends) == (2, 1), found.details
    assert found.lost == 2 and found.duplicated == 0, found.details
