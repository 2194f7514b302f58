"""The `revisit` command line: query and doctor against a real embedded warehouse."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess

import warehouse
from revisit.settings import Settings
from tests.conftest import VENV_BIN, run_cli


def _seed(settings: Settings) -> None:
    with warehouse.connect(settings.warehouse_dsn) as client:
        client.command("CREATE DATABASE IF NOT EXISTS marts")
        client.command(
            "CREATE TABLE marts.segments (segment String, customers UInt32) "
            "ENGINE = MergeTree ORDER BY segment"
        )
        client.insert("marts.segments", [["champions", 12], ["спящие", 3]])


def test_query_formats(settings: Settings) -> None:
    _seed(settings)
    sql = "SELECT segment, customers FROM marts.segments ORDER BY segment"
    as_json = run_cli(["query", sql, "--format", "json"], settings, check=True)
    assert json.loads(as_json.stdout) == [
        {"segment": "champions", "customers": 12},
        {"segment": "спящие", "customers": 3},
    ]
    as_csv = run_cli(["query", sql, "-f", "csv"], settings, check=True)
    assert list(csv.reader(io.StringIO(as_csv.stdout))) == [
        ["segment", "customers"], ["champions", "12"], ["спящие", "3"],
    ]  # fmt: skip
    as_table = run_cli(["query", sql], settings, check=True)
    assert "champions" in as_table.stdout and "2 row(s)" in as_table.stdout


def test_query_error_is_one_clear_line(settings: Settings) -> None:
    _seed(settings)
    result = run_cli(["query", "SELECT nope FROM marts.segments"], settings)
    assert result.returncode == 1
    assert "error:" in result.stderr and "nope" in result.stderr
    assert "Traceback" not in result.stderr


def test_doctor_reports_ok_then_locked(settings: Settings) -> None:
    result = run_cli(["doctor", "--json"], settings)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["warehouse"]["status"] == "ok"
    assert report["data_dir"] == str(settings.data_dir)
    assert report["packages"]["chdb"] != "not installed"
    assert report["state_dsn"].startswith("sqlite:///")

    with warehouse.connect(settings.warehouse_dsn):
        locked = run_cli(["doctor", "--json"], settings)
    assert locked.returncode == 1
    status = json.loads(locked.stdout)["warehouse"]
    assert status["status"] == "locked"
    assert status["pid"] == str(os.getpid())
    assert status["path"] == str(settings.data_dir / "warehouse")


def test_a_bad_setting_is_one_line_naming_the_variable(settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVISIT_")}
    env.update(REVISIT_DATA_DIR=str(settings.data_dir), REVISIT_DBT_TARGET="cloud")
    done = subprocess.run(
        [str(VENV_BIN / "revisit"), "doctor"], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "REVISIT_DBT_TARGET='cloud'" in done.stderr and "'embedded' or 'server'" in done.stderr
    assert "Traceback" not in done.stderr
