"""Quality suites: quarantine contract, and the vectorised engine agrees with GX."""

from __future__ import annotations

import json
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestion.quality import (
    QUARANTINE_COLUMNS,
    SuiteError,
    get_suite,
    register_suite,
    suite_names,
    validate,
)


def appointments() -> pd.DataFrame:
    ts = pd.Timestamp("2024-05-01T10:00:00Z")
    return pd.DataFrame(
        {
            "business_id": ["b1", "b1", None, "b1"],
            "appointment_id": ["a1", "a2", "a3", "a4"],
            "source_customer_id": ["c1", "c2", "c3", "c4"],
            "status": ["completed", "teleported", "scheduled", "cancelled"],
            "scheduled_at": [ts, ts, ts, None],
            "amount": [Decimal("10.50"), None, None, Decimal("-1")],
            "currency": ["RUB", "RUB", "rub", "KZT"],
            "updated_at": [ts, ts, ts, ts],
        },
        index=[10, 11, 12, 13],
    )


def test_good_quarantine_and_checks() -> None:
    frame = appointments()
    result = validate(frame, "crm_appointments", source="crm_api", row_ref=frame.appointment_id)
    assert result.good.index.tolist() == [10]
    assert list(result.quarantine.columns) == list(QUARANTINE_COLUMNS)
    got = set(zip(result.quarantine.row_ref, result.quarantine.field, strict=True))
    assert got == {
        ("a2", "status"),
        ("a3", "business_id"),
        ("a3", "currency"),
        ("a4", "scheduled_at"),
        ("a4", "amount"),
    }
    assert (result.quarantine.source_kind == "crm_api").all()
    raw = json.loads(result.quarantine.raw_row.iloc[0])
    assert raw["appointment_id"] in {"a2", "a3", "a4"} and "currency" in raw
    by_column = {(c["name"], c["column"]): c for c in result.checks}
    assert len(result.checks) == len(get_suite("crm_appointments"))
    assert by_column[("expect_column_values_to_be_in_set", "status")]["unexpected_count"] == 1
    assert by_column[("expect_column_values_to_be_between", "amount")]["success"] is False
    assert by_column[("expect_column_values_to_not_be_null", "appointment_id")]["success"]
    assert not result.success


def test_clean_frame_passes_everything() -> None:
    frame = appointments().iloc[[0]]
    result = validate(frame, "crm_appointments", source="crm_api")
    assert result.success and len(result.good) == 1 and result.quarantine.empty
    assert list(result.quarantine.columns) == list(QUARANTINE_COLUMNS)


def test_unknown_suite_and_missing_column_are_errors() -> None:
    with pytest.raises(SuiteError, match="unknown quality suite"):
        validate(appointments(), "nope", source="x")
    with pytest.raises(SuiteError, match="no column"):
        validate(appointments().drop(columns="status"), "crm_appointments", source="x")


def test_declared_suites_exist_for_every_source() -> None:
    for name in [
        "crm_businesses",
        "crm_locations",
        "crm_services",
        "crm_customers",
        "crm_appointments",
        "partner_events",
        "partner_offers",
        "messenger_events",
    ]:
        assert name in suite_names() and get_suite(name)


def test_engines_agree_on_fixture() -> None:
    frame = appointments()
    a = validate(frame, "crm_appointments", source="s", engine="pandas")
    b = validate(frame, "crm_appointments", source="s", engine="gx")
    assert a.checks == b.checks
    pd.testing.assert_frame_equal(a.quarantine, b.quarantine)
    assert a.good.index.tolist() == b.good.index.tolist()


register_suite(
    "test_mixed",
    [
        {"expect": "not_null", "column": "s"},
        {"expect": "in_set", "column": "s", "values": ["a", "b", ""]},
        {"expect": "match_regex", "column": "s", "regex": "^[ab]+$"},
        {"expect": "between", "column": "x", "min": -5, "max": 5},
        {"expect": "not_null", "column": "x"},
    ],
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.sampled_from(["a", "b", "", "ab", "c", "A", "ba\n"])),
            st.one_of(st.none(), st.integers(-8, 8), st.floats(-10, 10, allow_nan=False)),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_engines_agree_on_arbitrary_frames(rows: list[tuple[str | None, float | None]]) -> None:
    frame = pd.DataFrame(
        {
            "s": pd.Series([r[0] for r in rows], dtype=object),
            "x": pd.Series([r[1] for r in rows], dtype="float64"),
        },
        index=np.arange(len(rows)) * 3 + 7,
    )
    a = validate(frame, "test_mixed", source="s", engine="pandas")
    b = validate(frame, "test_mixed", source="s", engine="gx")
    assert a.checks == b.checks
    assert a.good.index.tolist() == b.good.index.tolist()
    assert sorted(zip(a.quarantine.row_ref, a.quarantine.field, strict=True)) == sorted(
        zip(b.quarantine.row_ref, b.quarantine.field, strict=True)
    )
