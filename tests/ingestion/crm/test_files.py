"""CRM file drops: CSV (BOM, separators), Excel, Parquet; bad files; idempotency; kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import warehouse
from ingestion.crm import files, load_crm_exports
from ingestion.crm.files import entity_of
from ingestion.crm.mapping import load_field_map
from revisit.settings import DEV_ID_KEY, PROJECT_ROOT
from tests.ingestion.crm.crmdata import APPOINTMENTS, BUSINESSES, CUSTOMERS, SERVICES, appointment


def count(client, table: str) -> int:
    return client.query(f"SELECT count() FROM raw.{table} FINAL").result_rows[0][0]


def write_exports(root: Path) -> Path:
    b1 = root / "b1"
    b1.mkdir(parents=True)
    pd.DataFrame(BUSINESSES).to_csv(b1 / "businesses.csv", index=False, encoding="utf-8-sig")
    frame = pd.DataFrame(APPOINTMENTS)
    frame.loc[3, "start_at"] = "yesterday"  # unparseable timestamp → quarantined
    frame.to_csv(b1 / "appointments_202405.csv", index=False, encoding="utf-8-sig")
    pd.DataFrame(CUSTOMERS).to_excel(b1 / "customers.xlsx", index=False)
    pq.write_table(pa.Table.from_pylist(SERVICES), b1 / "services.parquet")
    (b1 / "appointments_202404.csv").write_bytes(b"\x00\x01binary\xffgarbage\n\x00")
    (b1 / "customers_broken.csv").write_text("who,what\n1,2\n", encoding="utf-8")
    return root


def test_entity_of() -> None:
    assert entity_of(Path("appointments_202405.csv")) == "appointments"
    assert entity_of(Path("customers.xlsx")) == "customers"
    assert entity_of(Path("readme.txt")) is None


def test_exports_load_and_bad_files_are_reported(tmp_path, client) -> None:
    root = write_exports(tmp_path / "exports")
    _results, errors = load_crm_exports(client, root, id_key=DEV_ID_KEY)
    failed = {Path(e.path).name: e.error for e in errors}
    assert set(failed) == {"appointments_202404.csv", "customers_broken.csv"}
    assert "required field" in failed["customers_broken.csv"]
    assert count(client, "crm_businesses") == 2
    assert count(client, "crm_appointments") == 24  # a3 bad start_at, a99 bad status
    assert count(client, "crm_customers") == 4
    assert count(client, "crm_services") == 1
    q = client.query(
        "SELECT _source, row_ref, field, reason FROM raw.quarantine "
        "WHERE source_table = 'crm_appointments' ORDER BY row_ref"
    ).result_rows
    assert ("b1/appointments_202405.csv", "5", "scheduled_at") in [r[:3] for r in q]
    assert any("yesterday" in r[3] for r in q)
    phones = set(
        r[0] for r in client.query("SELECT phone_e164 FROM raw.crm_customers FINAL").result_rows
    )
    assert "+79161234561" in phones and "+77012345678" in phones
    # Rerun: every file is a done batch, nothing is inserted again.
    again, errors_again = load_crm_exports(client, root, id_key=DEV_ID_KEY)
    assert all(r.skipped for r in again) and len(errors_again) == 2
    assert client.query("SELECT count() FROM raw.crm_appointments").result_rows[0][0] == 24
    # Merges were paused per entity during the load and run again after it
    # (OPTIMIZE is refused with ABORTED while they are stopped).
    for table in ("crm_businesses", "crm_customers", "crm_services", "crm_appointments"):
        client.command(f"OPTIMIZE TABLE raw.{table} FINAL")


def test_rerun_reads_only_files_not_loaded_yet(tmp_path, client, monkeypatch) -> None:
    root = write_exports(tmp_path / "exports")
    load_crm_exports(client, root, id_key=DEV_ID_KEY)
    read = []
    original = files.read_file
    monkeypatch.setattr(
        files, "read_file", lambda path, *a: read.append(path.name) or original(path, *a)
    )
    (root / "b1" / "appointments_202406.csv").write_text(
        pd.DataFrame([appointment(200)]).to_csv(index=False), encoding="utf-8"
    )
    results, errors = load_crm_exports(client, root, id_key=DEV_ID_KEY)
    # Done batches are recognised by content hash without parsing; the broken files
    # (never done) and the new file are read.
    assert sorted(read) == [
        "appointments_202404.csv", "appointments_202406.csv", "customers_broken.csv"
    ]  # fmt: skip
    assert len(errors) == 2
    loaded = [r for r in results if not r.skipped]
    assert [(r.table, r.rows_loaded) for r in loaded] == [("crm_appointments", 1)]
    assert count(client, "crm_appointments") == 25


def test_csv_separator_and_encoding_by_config(tmp_path, client) -> None:
    base = load_field_map()
    fmap = type(base)(
        name="cp1251",
        entities=base.entities,
        csv_options={"delimiter": ";", "encoding": "cp1251"},
    )
    root = tmp_path / "exports"
    (root / "b1").mkdir(parents=True)
    services = pd.DataFrame(SERVICES[:1]).assign(name="Стрижка")
    services.to_csv(root / "b1" / "services.csv", sep=";", index=False, encoding="cp1251")
    results, errors = load_crm_exports(client, root, field_map=fmap, id_key=DEV_ID_KEY)
    assert errors == [] and results[0].rows_loaded == 1
    name = client.query("SELECT name FROM raw.crm_services").result_rows[0][0]
    assert name == "Стрижка"


CHILD = """
import sys, time
from pathlib import Path
import warehouse
import warehouse.load
from ingestion.crm import load_crm_exports
from revisit.settings import DEV_ID_KEY
root, dsn, marker = sys.argv[1:4]
original = warehouse.load.insert_frame
def insert_then_stall(client, table, frame, *args, **kwargs):
    original(client, table, frame, *args, **kwargs)
    if table == "raw.crm_appointments":
        Path(marker).write_text("inserted")
        time.sleep(120)  # killed here: rows in, batch not marked done
warehouse.load.insert_frame = insert_then_stall
with warehouse.connect(dsn) as client:
    load_crm_exports(client, Path(root), id_key=DEV_ID_KEY)
"""


def test_kill_9_half_way_then_rerun_gives_exact_counts(tmp_path) -> None:
    root = tmp_path / "exports" / "b1"
    root.mkdir(parents=True)
    n = 60_000
    big = pd.DataFrame(
        {
            "id": [f"a{i}" for i in range(n)],
            "business_id": "b1",
            "client_id": [f"c{i % 997}" for i in range(n)],
            "location_id": "l1",
            "service_id": "s1",
            "status": "completed",
            "start_at": "2024-05-03T09:00:00Z",
            "amount": "10.50",
            "currency": "RUB",
            "promo_offer_id": None,
            "created_at": "2024-05-01T00:00:00Z",
            "updated_at": "2024-05-03T10:00:00Z",
        }
    )
    big.to_csv(root / "appointments_202405.csv", index=False, encoding="utf-8-sig")
    dsn = f"chdb://{tmp_path / 'wh'}"
    marker = tmp_path / "marker"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root.parent), dsn, str(marker)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, "loader exited before the kill point"
            assert time.monotonic() < deadline, "loader never reached the kill point"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    with warehouse.connect(dsn) as client:
        partial = client.query(
            "SELECT argMax(status, _version) FROM raw.load_batches "
            "WHERE target_table = 'crm_appointments'"
        ).result_rows[0][0]
        assert partial == "started"
        assert client.query("SELECT count() FROM raw.crm_appointments").result_rows[0][0] == n
        results, errors = load_crm_exports(client, root.parent, id_key=DEV_ID_KEY)
        assert errors == [] and results[0].rows_loaded == n and not results[0].skipped
        # Plain count (no FINAL): exactly one copy of every row, nothing lost.
        got = client.query(
            "SELECT count(), uniqExact(appointment_id), toString(sum(amount)) "
            "FROM raw.crm_appointments"
        ).result_rows[0]
        assert got == (n, n, str(pd.Series([10.5] * n).sum()).removesuffix(".0"))
