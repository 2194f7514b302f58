"""Idempotent batch loads: reruns and crashed batches leave exactly one copy."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

import warehouse
from revisit.settings import Settings
from warehouse.load import _record_batch, batch_status, done_batches, load_batch, prepare_raw


def businesses(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "business_id": [f"b{i}" for i in range(n)],
            "name": [f"Салон {i}" for i in range(n)],
            "kind": "salon",
            "country": "RU",
            "city": "Москва",
            "timezone": "Europe/Moscow",
            "currency": "RUB",
            "updated_at": datetime(2026, 1, 1, tzinfo=UTC),
        }
    )


def test_rerun_of_a_done_batch_inserts_nothing(settings: Settings) -> None:
    with warehouse.connect(settings.warehouse_dsn) as client:
        prepare_raw(client)
        first = load_batch(client, "crm_businesses", businesses(5), batch_id="f1", source="a.csv")
        again = load_batch(client, "crm_businesses", businesses(5), batch_id="f1", source="a.csv")
        assert (first.rows_loaded, first.skipped) == (5, False)
        assert (again.rows_loaded, again.skipped) == (0, True)
        assert client.command("SELECT count() FROM raw.crm_businesses") == 5
        assert batch_status(client, "crm_businesses", "f1") == "done"


def test_a_crashed_batch_is_replaced_not_duplicated(settings: Settings) -> None:
    with warehouse.connect(settings.warehouse_dsn) as client:
        prepare_raw(client)
        # What a load killed half-way leaves behind: `started`, and some of its rows.
        _record_batch(client, "crm_businesses", "f2", "b.csv", "started", 0, 0)
        partial = businesses(3).assign(_batch_id="f2", _source="b.csv", _row=0, _version=1)
        client.insert_df("raw.crm_businesses", partial)
        quarantined = pd.DataFrame(
            {"source_kind": ["crm"], "row_ref": ["7"], "field": ["phone"],
             "reason": ["invalid number"], "raw_row": ["{}"]}
        )  # fmt: skip
        result = load_batch(
            client, "crm_businesses", businesses(10), batch_id="f2", source="b.csv",
            quarantine=quarantined,
        )  # fmt: skip
        assert (result.rows_loaded, result.rows_quarantined) == (10, 1)
        assert client.command("SELECT count() FROM raw.crm_businesses") == 10
        assert client.command("SELECT count() FROM raw.quarantine") == 1


def test_redelivered_rows_collapse_to_the_latest_version(settings: Settings) -> None:
    with warehouse.connect(settings.warehouse_dsn) as client:
        prepare_raw(client)
        load_batch(client, "crm_businesses", businesses(2), batch_id="p1", source="api")
        renamed = businesses(2).assign(name=["Новое имя", "Другое"])
        load_batch(client, "crm_businesses", renamed, batch_id="p2", source="api")
        rows = client.query(
            "SELECT business_id, name FROM raw.crm_businesses FINAL ORDER BY business_id"
        ).result_rows
    assert rows == [("b0", "Новое имя"), ("b1", "Другое")]


def test_without_collapse_on_insert_repeats_in_a_batch_wait_for_final(settings: Settings) -> None:
    repeated = pd.concat([businesses(2), businesses(2).assign(name=["Новое", "Другое"])])
    with warehouse.connect(settings.warehouse_dsn) as client:
        prepare_raw(client)
        load_batch(
            client, "crm_businesses", repeated, batch_id="c1", source="a.csv",
            collapse_on_insert=False,
        )  # fmt: skip
        # One part, so no merge can collapse it behind the test's back.
        assert client.command("SELECT count() FROM raw.crm_businesses") == 4
        rows = client.query(
            "SELECT business_id, name FROM raw.crm_businesses FINAL ORDER BY business_id"
        ).result_rows
        # Same version within a batch: the row inserted last wins, as with the collapse.
        assert rows == [("b0", "Новое"), ("b1", "Другое")]
        load_batch(client, "crm_businesses", repeated, batch_id="c3", source="b.csv")
        assert client.command("SELECT count() FROM raw.crm_businesses WHERE _batch_id = 'c3'") == 2


def test_done_batches_lists_only_finished_batches(settings: Settings) -> None:
    with warehouse.connect(settings.warehouse_dsn) as client:
        prepare_raw(client)
        load_batch(client, "crm_businesses", businesses(1), batch_id="d1", source="a.csv")
        _record_batch(client, "crm_businesses", "d2", "b.csv", "started", 0, 0)
        load_batch(client, "crm_locations", pd.DataFrame(), batch_id="d3", source="c.csv")
        assert done_batches(client, "crm_businesses") == {"d1"}
        assert done_batches(client, "crm_locations") == {"d3"}
