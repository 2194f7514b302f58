"""The warehouse client on the real embedded engine: round trip, reopen, the lock."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

import warehouse
from revisit.settings import Settings
from warehouse.schema import DATABASES, ensure_databases


def test_round_trip_close_and_reopen(settings: Settings) -> None:
    frame = pd.DataFrame({"id": range(1000), "amount": [Decimal(f"{i}.50") for i in range(1000)]})
    with warehouse.connect(settings.warehouse_dsn) as client:
        ensure_databases(client)
        client.command(
            "CREATE TABLE raw.t (id UInt32, amount Decimal(18, 2)) ENGINE = MergeTree ORDER BY id"
        )
        client.insert_df(
            "raw.t", frame.assign(amount=frame.amount.map(__import__("decimal").Decimal))
        )
        assert client.command("SELECT count() FROM raw.t") == 1000
    # Closed: nothing holds the directory, and it opens again with the data intact.
    assert warehouse.lock_holder(warehouse.parse_dsn(settings.warehouse_dsn).path) is None
    with warehouse.connect(settings.warehouse_dsn) as client:
        total = client.query("SELECT sum(amount) FROM raw.t").result_rows[0][0]
        databases = {r[0] for r in client.query("SHOW DATABASES").result_rows}
    assert total == sum(frame.amount) == Decimal("500000.00")
    assert set(DATABASES) <= databases


def test_second_process_gets_a_clear_lock_error(settings: Settings) -> None:
    path = warehouse.parse_dsn(settings.warehouse_dsn).path
    child = textwrap.dedent(
        f"""
        import warehouse
        try:
            with warehouse.connect({settings.warehouse_dsn!r}):
                print("OPENED")
        except warehouse.WarehouseLockedError as ex:
            print("LOCKED", ex.pid)
            print(ex)
        """
    )
    with warehouse.connect(settings.warehouse_dsn):
        out = subprocess.run(
            [sys.executable, "-c", child], capture_output=True, text=True, timeout=120
        )
    assert out.returncode == 0, out.stderr
    first, message = out.stdout.split("\n", 1)
    assert first == f"LOCKED {os.getpid()}"
    assert str(path) in message
    assert "REVISIT_WAREHOUSE_DSN" in message
    assert "Traceback" not in out.stderr
    # Once this process closed its client, the child process can open it.
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert out.stdout.startswith("OPENED"), out.stderr


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("chdb:///var/lib/revisit", ("embedded", Path("/var/lib/revisit"))),
        ("http://u:p%40ss@ch.local:8124/analytics", ("server", "ch.local", 8124, "p@ss")),
        ("https://ch.example", ("server", "ch.example", 8443, "")),
    ],
)
def test_parse_dsn(dsn: str, expected: tuple) -> None:
    target = warehouse.parse_dsn(dsn)
    if expected[0] == "embedded":
        assert (target.kind, target.path) == expected
    else:
        assert (target.kind, target.host, target.port, target.password) == expected
        assert "p@ss" not in target.display


@pytest.mark.parametrize("dsn", ["postgres://x", "chdb://", "chdb://memory"])
def test_bad_dsn_is_a_clear_error(dsn: str) -> None:
    with pytest.raises(warehouse.WarehouseError, match="DSN"):
        warehouse.parse_dsn(dsn)


def test_unreachable_server_is_a_warehouse_error() -> None:
    with (
        pytest.raises(warehouse.WarehouseError, match="Cannot reach ClickHouse"),
        warehouse.connect("http://127.0.0.1:1/default"),
    ):
        pass
