"""Every ingestion failure is visible where the user is (issue #15 item 3): `revisit ingest`
exits non-zero and says, per file, what failed or was skipped and what to change; quarantine
reasons carry the value and the rule; an unreachable CRM API names its URL and setting and
does not stop the file drops.

One `revisit ingest crm` run (a child process, ~10 s) covers every failure mode: each
business folder of the source directory carries one of them, and the CRM API points at a
port nothing listens on. Each test checks its mode's message in that run's output."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import warehouse
from ingestion.crm.mapping import EXAMPLE_FIELD_MAPS
from revisit.settings import PROJECT_ROOT, Settings
from simulation.ru_salon_export import write_salon_export
from tests.conftest import VENV_BIN, run_cli


def _map(settings: Settings, business: str, edit: Callable[[dict], object] | None = None) -> None:
    doc = yaml.safe_load((EXAMPLE_FIELD_MAPS / "ru_salon.yaml").read_text(encoding="utf-8"))
    if edit is not None:
        edit(doc)
    path = settings.field_maps_dir / f"{business}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


@dataclass(frozen=True)
class Run:
    settings: Settings
    exports: Path
    url: str
    done: subprocess.CompletedProcess[str]

    @property
    def lines(self) -> list[str]:
        return self.done.stdout.splitlines()

    def count(self, table: str, business: str) -> int:
        with warehouse.connect(self.settings.warehouse_dsn) as client:
            return int(
                client.command(
                    f"SELECT count() FROM raw.{table} FINAL WHERE business_id = '{business}'"
                )
            )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    settings = Settings(data_dir=tmp_path_factory.mktemp("ingest_failures") / "data")
    exports = settings.source_dir / "crm" / "exports"
    settings.field_maps_dir.mkdir(parents=True)
    for business in ("enc", "delim", "name", "status", "badmap"):
        write_salon_export(exports, business_id=business, customers=5)
    _map(settings, "enc", lambda d: d["files"]["csv"].update(encoding="utf-8"))
    _map(settings, "delim", lambda d: d["files"]["csv"].update(delimiter=","))
    _map(settings, "name")
    (exports / "name" / "Клиенты.csv").rename(exports / "name" / "clients_2025.csv")
    _map(settings, "status")
    path = exports / "status" / "Записи_2025.csv"
    text = path.read_bytes().decode("cp1251").replace(";Отменён;", ";Перенесён;", 1)
    path.write_bytes(text.encode("cp1251"))
    _map(settings, "badmap", lambda d: d["entities"]["appointments"]["fields"]["Статус"].update(
        tpye="string"))  # fmt: skip
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVISIT_")}
    env |= {"REVISIT_DATA_DIR": str(settings.data_dir), "REVISIT_CRM_API_URL": url}
    done = subprocess.run(
        [str(VENV_BIN / "revisit"), "ingest", "crm"], env=env, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return Run(settings, exports, url, done)


def test_the_run_exits_non_zero(run: Run) -> None:
    assert run.done.returncode == 1, run.done.stdout + run.done.stderr


def test_wrong_encoding_fails_the_file_with_a_hint(run: Run) -> None:
    (line,) = [x for x in run.lines if x.startswith("failed enc/Клиенты.csv")]
    assert line.startswith(
        "failed enc/Клиенты.csv: could not decode as utf-8: try `encoding: cp1251` in the "
        "field map (files.csv.encoding)"
    )
    assert run.count("crm_customers", "enc") == 0


def test_wrong_delimiter_fails_the_file_with_a_hint(run: Run) -> None:
    (line,) = [x for x in run.lines if x.startswith("failed delim/Клиенты.csv")]
    assert "one column found with delimiter ','" in line and "is the delimiter ';'?" in line


def test_unexpected_file_name_is_reported_as_skipped(run: Run) -> None:
    assert (
        "skipped name/clients_2025.csv: name matches none of the patterns of field map "
        "'ru_salon': Клиенты*.csv, Записи*.csv"
    ) in run.lines
    # The folder's other file still loads (its clients are unknown, so staging drops them).
    assert run.count("crm_appointments", "name") == 14


def test_unknown_status_is_quarantined_with_value_and_rule(run: Run) -> None:
    assert (
        "quarantined status/Записи_2025.csv: 1 × status: Статус: unknown value 'Перенесён' "
        "(expected one of 'Завершён', 'Отменён', 'Не пришёл', 'Запланирован')"
    ) in run.lines
    assert run.count("crm_appointments", "status") == 13  # of 14


def test_invalid_field_map_names_file_entity_field_and_key(run: Run) -> None:
    failed = [x for x in run.lines if x.startswith("failed badmap/")]
    assert len(failed) == 2  # both files of the folder
    assert all(
        "field_maps/badmap.yaml: entity appointments, field 'Статус', key tpye: unknown key" in line
        for line in failed
    )
    missing = run_cli(["ingest", "files", "--field-map", "/nonexistent/map.yaml"], run.settings)
    assert missing.returncode == 1
    assert "field map /nonexistent/map.yaml: cannot read it" in missing.stderr


def test_unreachable_crm_api_names_url_and_setting_and_files_still_load(run: Run) -> None:
    message = " ".join(run.done.stderr.split())
    assert f"CRM API at {run.url} (set by REVISIT_CRM_API_URL) cannot be reached" in message
    assert "ConnectError" in message and "unset REVISIT_CRM_API_URL" in message
    assert run.count("crm_customers", "status") == 5
    assert run.count("crm_businesses", "status") == 1


def test_a_missing_source_folder_is_named_without_a_traceback(run: Run) -> None:
    missing = run_cli(["ingest", "files", "--source", "/nonexistent/exports"], run.settings)
    assert missing.returncode == 1
    message = " ".join(missing.stderr.split())
    assert "no CRM exports at /nonexistent/exports: --source takes a folder" in message
    assert "Traceback" not in missing.stderr
