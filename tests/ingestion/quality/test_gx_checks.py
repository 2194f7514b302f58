"""Great Expectations on the staging views (ingestion.gx_checks): real dbt staging views
in an embedded warehouse, rows written straight into raw.* (bypassing ingestion, as a
manual backfill would), GX Data Docs under the data directory."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

import warehouse
from ingestion.gx_checks import STAGING_SUITES, StagingSuite, docs_index, validate_staging
from ingestion.quality import SuiteError, register_suite, suite_names
from warehouse.config import DbtConfig
from warehouse.dbt_runner import run_dbt
from warehouse.load import prepare_raw

pytestmark = pytest.mark.slow

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _customers(phones: list[str]) -> pd.DataFrame:
    n = len(phones)
    return pd.DataFrame(
        {
            "business_id": ["b1"] * n,
            "source_customer_id": [f"c{i}" for i in range(n)],
            "customer_id": [f"id{i}" for i in range(n)],
            "phone_e164": phones,
            "full_name": ["A"] * n,
            "gender": ["f"] * n,
            "consent_marketing": [True] * n,
            "created_at": [NOW] * n,
            "updated_at": [NOW] * n,
            "_version": [1] * n,
        }
    )


def _appointments(statuses: list[str]) -> pd.DataFrame:
    n = len(statuses)
    return pd.DataFrame(
        {
            "business_id": ["b1"] * n,
            "appointment_id": [f"a{i}" for i in range(n)],
            "source_customer_id": ["c0"] * n,
            "status": statuses,
            "scheduled_at": [NOW] * n,
            "amount": [Decimal("12.50")] * n,
            "currency": ["EUR"] * n,
            "created_at": [NOW] * n,
            "updated_at": [NOW] * n,
            "_version": [1] * n,
        }
    )


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbtConfig]:
    """The staging views built by dbt over raw tables holding a few good rows."""
    tmp = tmp_path_factory.mktemp("gx-staging")
    config = DbtConfig(warehouse_dsn=f"chdb://{tmp / 'warehouse'}", artifacts_dir=tmp / "dbt")
    with warehouse.connect(config.warehouse_dsn) as client:
        prepare_raw(client)
        client.insert_df("raw.crm_customers", _customers(["+79161234567", "+4915112345678"]))
        client.insert_df("raw.crm_appointments", _appointments(["completed", "scheduled"]))
    run_dbt(["run", "--select", "staging"], config, capture=True)
    yield config


def test_good_rows_pass_and_data_docs_are_built(staging: DbtConfig, tmp_path: Path) -> None:
    with warehouse.connect(staging.warehouse_dsn) as client:
        result = validate_staging(client, tmp_path / "gx")
    assert [t.table for t in result.tables] == [s.table for s in STAGING_SUITES]
    assert result.success, [(t.table, [e.label for e in t.failed]) for t in result.tables]
    customers = next(t for t in result.tables if t.table == "stg_crm__customers")
    assert (customers.rows_total, customers.rows_validated, customers.sampled) == (2, 2, False)
    assert len(customers.expectations) == 6
    assert result.docs_index == docs_index(tmp_path / "gx")
    assert result.docs_index == tmp_path / "gx" / "data_docs" / "local_site" / "index.html"
    assert result.docs_index.is_file()
    for table in result.tables:
        assert table.docs_page is not None and table.docs_page.is_file(), table.table
        assert table.docs_page.is_relative_to(result.docs_index.parent)
    assert "stg_crm__customers" in result.docs_index.read_text(encoding="utf-8")


def test_a_planted_bad_row_fails_with_the_expectation_named(
    staging: DbtConfig, tmp_path: Path
) -> None:
    with warehouse.connect(staging.warehouse_dsn) as client:
        client.insert_df("raw.crm_appointments", _appointments(["x", "x", "done"]).iloc[[2]])
        client.insert_df("raw.crm_customers", _customers(["", "", "", "0916-123"]).iloc[[3]])
        try:
            result = validate_staging(
                client, tmp_path / "gx", tables=["stg_crm__appointments", "stg_crm__customers"]
            )
        finally:  # the other tests of this module see the good rows only
            client.command("DELETE FROM raw.crm_appointments WHERE appointment_id = 'a2'")
            client.command("DELETE FROM raw.crm_customers WHERE source_customer_id = 'c3'")
    appointments, customers = result.tables
    assert not result.success
    assert [e.label for e in appointments.failed] == ["expect_column_values_to_be_in_set(status)"]
    failed = appointments.failed[0]
    assert (failed.unexpected_count, failed.unexpected_values) == (1, ["done"])
    assert failed.severity == appointments.severity == "error"
    assert appointments.rows_total == 3
    assert [(e.label, e.unexpected_values) for e in customers.failed] == [
        ("expect_column_values_to_match_regex(phone_e164)", ["0916-123"])
    ]
    # The page of the failed validation names the expectation and the value.
    page = appointments.docs_page.read_text(encoding="utf-8")
    assert "done" in page and "status" in page


def test_soft_failures_warn_and_large_tables_are_sampled(
    staging: DbtConfig, tmp_path: Path
) -> None:
    if "test_gx_currency" not in suite_names():
        register_suite(
            "test_gx_currency",
            [{"expect": "match_regex", "column": "currency", "regex": "^USD$", "reason": "r"}],
        )
    spec = StagingSuite("stg_crm__appointments", "test_gx_currency")
    with warehouse.connect(staging.warehouse_dsn) as client:
        result = validate_staging(client, tmp_path / "gx", suites=[spec], sample_rows=1)
    (table,) = result.tables
    assert (table.rows_total, table.rows_validated, table.sampled) == (2, 1, True)
    assert table.severity == "warn"
    assert table.failed[0].unexpected_values == ["EUR"]


def test_renamed_columns_are_mapped_and_a_missing_one_is_named(
    staging: DbtConfig, tmp_path: Path
) -> None:
    """Suites name raw columns; staging renames some (crm_businesses.name → business_name)."""
    if "test_gx_business_name" not in suite_names():
        register_suite(
            "test_gx_business_name",
            [{"expect": "not_null", "column": "name", "reason": "name missing"}],
        )
    mapped = StagingSuite("stg_crm__businesses", "test_gx_business_name", {"name": "business_name"})
    unmapped = StagingSuite("stg_crm__businesses", "test_gx_business_name")
    with warehouse.connect(staging.warehouse_dsn) as client:
        result = validate_staging(client, tmp_path / "gx", suites=[mapped])
        assert result.success
        assert result.tables[0].expectations[0].column == "business_name"
        with pytest.raises(SuiteError, match=r"stg_crm__businesses has no column\(s\) \['name'\]"):
            validate_staging(client, tmp_path / "gx", suites=[unmapped])
        with pytest.raises(SuiteError, match="no suite for staging table"):
            validate_staging(client, tmp_path / "gx", tables=["stg_nope"])
