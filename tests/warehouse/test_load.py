"""Idempotent batch loads: reruns and crashed batches leave exactly one copy."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

import warehouse
from revisit.settings import Settings
from warehouse.load import (
    _record_batch,
    batch_status,
    done_batches,
    insert_arrow,
    insert_frame,
    load_batch,
    merges_paused,
    prepare_raw,
    with_bookkeeping,
)


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


def offers() -> pd.DataFrame:
    """Partner offers: arrays, nullable decimals, small unsigned ints, dates."""
    return pd.DataFrame(
        {
            "offer_id": ["o1", "o2"],
            "publisher_business_id": ["b1", "b2"],
            "title": ["Скидка 10%", "Кэшбэк"],
            "distributor_business_ids": [["b2", "b3"], []],
            "reward_per_client": [Decimal("150.00"), Decimal("0.50")],
            "discount_pct": [Decimal("10.0000"), None],
            "cashback_pct": [None, Decimal("2.5000")],
            "currency": ["RUB", "KZT"],
            "capacity": [100, None],
            "audience_min_age": [18, None],
            "audience_max_age": [None, 65],
            "audience_gender": ["f", None],
            "valid_from": [date(2026, 1, 1), date(2026, 2, 1)],
            "valid_to": [date(2026, 12, 31), date(2026, 3, 1)],
        }
    )


def customers() -> pd.DataFrame:
    """CRM customers: a nullable Date32, Bool, timestamps with milliseconds."""
    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    return pd.DataFrame(
        {
            "business_id": ["b1", "b1"],
            "source_customer_id": ["c1", "c2"],
            "customer_id": ["h1", "h2"],
            "phone_e164": ["+79161234561", ""],
            "phone_raw": ["8 916 123-45-61", ""],
            "full_name": ["Анна", ""],
            "birthday": [date(1990, 5, 17), None],
            "gender": ["f", ""],
            "consent_marketing": [True, False],
            "created_at": pd.Series([at, at]).dt.as_unit("ms"),
            "updated_at": pd.Series([at, pd.Timestamp(0, tz="UTC")]).dt.as_unit("ms"),
        }
    )


def test_embedded_insert_reads_arrow_in_place_with_the_same_result(settings: Settings) -> None:
    # The in-process Python() insert must give exactly what the engine's Arrow input
    # format (clickhouse-connect's insert_arrow, the server path) gives.
    with warehouse.connect(settings.warehouse_dsn) as client:
        prepare_raw(client)
        for table, frame, key in [
            ("partner_offers", offers(), "offer_id"),
            ("crm_customers", customers(), "source_customer_id"),
        ]:
            rows = with_bookkeeping(frame, "batch-1", "offers.csv").assign(_version=7)
            client.command(f"CREATE TABLE raw.{table}_twin AS raw.{table}")
            insert_frame(client, f"raw.{table}", rows)
            client.insert_arrow(
                f"raw.{table}_twin", pa.Table.from_pandas(rows, preserve_index=False)
            )
            select = "SELECT * EXCEPT _loaded_at FROM raw.{} ORDER BY " + key
            ours = client.query(select.format(table)).result_rows
            assert ours == client.query(select.format(f"{table}_twin")).result_rows
            assert len(ours) == 2
        offer = client.query(
            "SELECT distributor_business_ids, discount_pct, capacity, audience_gender "
            "FROM raw.partner_offers WHERE offer_id = 'o1'"
        ).result_rows[0]
        assert offer == (["b2", "b3"], Decimal("10.0000"), 100, "f")


def test_embedded_insert_failure_names_the_table(settings: Settings) -> None:
    with warehouse.connect(settings.warehouse_dsn) as client:
        prepare_raw(client)
        with pytest.raises(DatabaseError, match=r"raw\.crm_businesses"):
            insert_arrow(client, "raw.crm_businesses", pa.table({"no_such_column": [1]}))


def test_merges_pause_inside_the_block_and_resume_after_it(settings: Settings) -> None:
    with warehouse.connect(settings.warehouse_dsn) as client:
        prepare_raw(client)
        for batch in ("m1", "m2"):  # two parts to merge
            load_batch(client, "crm_businesses", businesses(2), batch_id=batch, source="a.csv")
        with (
            pytest.raises(RuntimeError, match="load failed"),
            merges_paused(client, "crm_businesses"),
        ):
            with pytest.raises(DatabaseError, match="ABORTED"):
                client.command("OPTIMIZE TABLE raw.crm_businesses FINAL")
            raise RuntimeError("load failed")
        # Resumed although the block raised: the parts merge (and collapse) now.
        client.command("OPTIMIZE TABLE raw.crm_businesses FINAL")
        assert client.command("SELECT count() FROM raw.crm_businesses") == 2
