"""CSV exports typed and validated in the engine (`files.load_csv`) load exactly what the
reference path (`prepare` on the whole file) loads: the same rows, the same quarantine rows
with the same reasons, on the embedded engine and through a server (HTTP stand-in)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import warehouse
from ingestion.crm import files, load_crm_exports
from revisit.settings import DEV_ID_KEY
from simulation.clickhouse_http import running
from tests.ingestion.crm.crmdata import BUSINESSES, CUSTOMERS, SERVICES, appointment
from warehouse import schema

# Every value here converts with the reader's types: the reader's typed table.
TYPED_ODD = {
    1: {"status": "teleported"},  # not in the suite's set
    2: {"status": ""},  # required value missing
    3: {"id": "   "},  # blank key: missing
    4: {"client_id": ""},
    5: {"start_at": ""},
    6: {"amount": "-5.00"},  # out of range
    7: {"currency": "rub"},  # not ISO-4217: value dropped, row kept
    8: {"updated_at": ""},
    9: {"location_id": " \u00a0"},  # blank optional string: kept as ""
}
TYPED_FINE = {
    10: {"id": "a0", "amount": "99.00"},  # repeats row 0's key: the later row wins
    11: {"deleted": "1"},
    12: {"deleted": "FALSE"},
    13: {"service_id": "стрижка"},  # starts with a non-ASCII letter, not blank
    14: {"currency": ""},
}
# One value that does not convert makes the whole file text; these rows probe the text
# typing: spellings the engine accepts, and ones it leaves to `prepare` (good or bad).
TEXT_ODD = {
    **TYPED_ODD,
    15: {"start_at": "yesterday"},
    16: {"start_at": "2024-05-03T09:00:00+03:00"},  # offset: parsed by `prepare`
    17: {"start_at": "2024-02-30T10:00:00Z"},  # no such day
    18: {"start_at": "2024-01-01T24:00:00Z"},  # hour 24
    19: {"amount": "1 500,00"},
    20: {"amount": "12.345"},
    21: {"amount": "+5"},  # accepted by `prepare`'s rule, not the engine's shape
    22: {"deleted": " true "},  # stripped by `prepare`
    23: {"deleted": "maybe"},  # not a bool: value dropped, row kept
    24: {"updated_at": " 2024-05-03T10:00:00Z"},
}
TEXT_FINE = {
    **TYPED_FINE,
    25: {"start_at": "2024-05-03 09:00:00"},
    26: {"start_at": "2024-05-03T09:00:00.123456Z"},
    27: {"amount": "007.50"},
    28: {"deleted": "yes"},
    29: {"updated_at": "2024-05-03T10:00:00"},
}
SERVICES_ODD = {1: {"price": "abc"}, 2: {"duration_min": "1e2"}, 3: {"duration_min": "61.0"},
                4: {"duration_min": "0"}, 5: {"duration_min": "x"}, 6: {"price": "-1"}}  # fmt: skip


def appointments(n: int, changes: dict[int, dict[str, str]]) -> pd.DataFrame:
    rows = [{**appointment(i), "deleted": ""} for i in range(n)]
    for i, change in changes.items():
        rows[i].update(change)
    return pd.DataFrame(rows)


def services(changes: dict[int, dict[str, str]]) -> pd.DataFrame:
    rows = [{**SERVICES[0], "id": f"s{i}", "duration_min": str(30 + i)} for i in range(8)]
    for i, change in changes.items():
        rows[i].update(change)
    return pd.DataFrame(rows)


def write_exports(root: Path) -> Path:
    b1 = root / "b1"
    b1.mkdir(parents=True)
    appointments(40, TYPED_ODD | TYPED_FINE).to_csv(
        b1 / "appointments_typed.csv", index=False, encoding="utf-8-sig"
    )
    text = appointments(40, TEXT_ODD | TEXT_FINE)
    # Keys of their own (a0 → t0), so that both files' rows stay in the table.
    text["id"] = text["id"].where(text["id"].str.strip() == "", "t" + text["id"].str[1:])
    text.to_csv(b1 / "appointments_text.csv", index=False)
    services(SERVICES_ODD).to_csv(b1 / "services.csv", index=False)
    pd.DataFrame(BUSINESSES).to_csv(b1 / "businesses.csv", index=False)
    # Phones are normalised by `prepare` (phonenumbers): the whole file goes there.
    pd.DataFrame(CUSTOMERS).to_csv(b1 / "customers.csv", index=False)
    return root


def loaded(client: warehouse.Client) -> dict[str, list[tuple]]:
    """What a load left in raw: rows (latest versions) and quarantine rows."""
    out = {}
    for table in ("crm_businesses", "crm_customers", "crm_appointments", "crm_services"):
        out[table] = client.query(
            f"SELECT * EXCEPT (_row, _version, _loaded_at) FROM raw.{table} FINAL ORDER BY ALL"
        ).result_rows
    out["quarantine"] = client.query(
        "SELECT source_table, _batch_id, _source, source_kind, row_ref, field, reason, raw_row "
        "FROM raw.quarantine ORDER BY ALL"
    ).result_rows
    out["batches"] = client.query(
        "SELECT target_table, _batch_id, rows_loaded, rows_quarantined FROM raw.load_batches "
        "WHERE status = 'done' ORDER BY ALL"
    ).result_rows
    return out


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_exports(tmp_path_factory.mktemp("engine") / "exports")


@pytest.fixture(scope="module")
def reference(exports: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple]]:
    """What the reference path (`prepare` on every row) loads."""
    with warehouse.connect(f"chdb://{tmp_path_factory.mktemp('reference')}") as client:
        _, errors = load_crm_exports(client, exports, id_key=DEV_ID_KEY, csv_engine=False)
        assert errors == []
        return loaded(client)


def test_engine_path_loads_what_the_reference_path_loads(
    exports: Path, reference: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine path hands `prepare` only the rows it does not accept itself.
    handed: dict[str, int] = {}
    original = files.prepare

    def spy(entity_map, frame, **kwargs):  # type: ignore[no-untyped-def]
        handed[entity_map.entity] = handed.get(entity_map.entity, 0) + len(frame)
        return original(entity_map, frame, **kwargs)

    monkeypatch.setattr(files, "prepare", spy)
    with warehouse.connect(f"chdb://{tmp_path / 'engine'}") as client:
        _, errors = load_crm_exports(client, exports, id_key=DEV_ID_KEY)
        assert errors == []
        engine = loaded(client)
        # Reloading is a no-op: every file is a done batch.
        again, _ = load_crm_exports(client, exports, id_key=DEV_ID_KEY)
        assert all(r.skipped for r in again)
    # (In a text file the engine reads the blank location itself; the typed reader keeps
    # blanks, so there the row goes to `prepare`.)
    assert handed == {
        "appointments": len(TYPED_ODD) + len(TEXT_ODD) - 1,
        "services": len(SERVICES_ODD),
        "customers": len(CUSTOMERS),
    }
    for part in reference:
        assert engine[part] == reference[part], part
    reasons = {row[6] for row in reference["quarantine"]}
    assert any("teleported" in r for r in reasons) and any("row kept" in r for r in reasons)
    assert any("phone" in r for r in reasons)
    assert len(reference["crm_appointments"]) > 40  # the clean rows of both files
    # The later of two rows with one key won (ReplacingMergeTree, `_version` by position).
    first = {r[1]: str(r[7]) for r in engine["crm_appointments"] if r[1] in ("a0", "t0")}
    assert first == {"a0": "99.00", "t0": "99.00"}


@pytest.mark.timeout(300)
def test_engine_path_through_a_server(exports: Path, reference: dict, tmp_path: Path) -> None:
    with running(tmp_path / "server") as url, warehouse.connect(url) as client:
        _, errors = load_crm_exports(client, exports, id_key=DEV_ID_KEY)
        assert errors == []
        served = loaded(client)
        # The stage tables the rows were sent into are gone.
        stages = (
            "SELECT count() FROM system.tables WHERE database = 'raw' AND name LIKE '\\\\_stage%'"
        )
        assert client.command(stages) == 0
    for part in reference:
        assert served[part] == reference[part], part


def test_a_file_failing_after_its_accepted_rows_went_in_leaves_no_rows(
    exports: Path, reference: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine inserts the rows it accepts before `prepare` sees the others: when that
    # fails, the file's rows already in are removed, and a rerun loads it whole.
    original = files.prepare

    def failing(entity_map, frame, **kwargs):  # type: ignore[no-untyped-def]
        if entity_map.entity == "appointments":
            raise ValueError("prepare failed")
        return original(entity_map, frame, **kwargs)

    with warehouse.connect(f"chdb://{tmp_path / 'engine'}") as client:
        monkeypatch.setattr(files, "prepare", failing)
        _, errors = load_crm_exports(client, exports, id_key=DEV_ID_KEY)
        assert sorted(Path(e.path).name for e in errors) == [
            "appointments_text.csv",
            "appointments_typed.csv",
        ]
        assert all("prepare failed" in e.error for e in errors)
        assert client.command("SELECT count() FROM raw.crm_appointments") == 0
        done = "SELECT count() FROM raw.load_batches WHERE target_table = 'crm_appointments' "
        assert client.command(done + "AND status = 'done'") == 0
        monkeypatch.setattr(files, "prepare", original)
        _, errors = load_crm_exports(client, exports, id_key=DEV_ID_KEY)
        assert errors == []
        assert loaded(client) == reference


def test_a_warehouse_created_with_string_bookkeeping_loads_the_same(
    exports: Path, reference: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Raw tables created before `_batch_id`/`_source` became LowCardinality keep String
    # columns (`CREATE TABLE IF NOT EXISTS`): loads, the clean-up of a failed batch
    # (DELETE by `_batch_id`) and reloads work on them as on new tables.
    old = schema.BOOKKEEPING.replace("LowCardinality(String)", "String")
    assert old != schema.BOOKKEEPING
    with warehouse.connect(f"chdb://{tmp_path / 'old'}") as client:
        schema.ensure_databases(client)
        for name in schema.RAW_TABLES:
            client.command(schema.raw_table_ddl(name).replace(schema.BOOKKEEPING, old))
        original = files.prepare

        def failing(entity_map, frame, **kwargs):  # type: ignore[no-untyped-def]
            if entity_map.entity == "appointments":
                raise ValueError("prepare failed")
            return original(entity_map, frame, **kwargs)

        monkeypatch.setattr(files, "prepare", failing)
        _, errors = load_crm_exports(client, exports, id_key=DEV_ID_KEY)
        assert len(errors) == 2
        monkeypatch.setattr(files, "prepare", original)
        _, errors = load_crm_exports(client, exports, id_key=DEV_ID_KEY)
        assert errors == []
        assert loaded(client) == reference
        types = client.query(
            "SELECT DISTINCT type FROM system.columns WHERE database = 'raw' "
            "AND name IN ('_batch_id', '_source')"
        ).result_rows
        assert types == [("String",)]
