"""A bad optional value costs the value, not the customer (issue #14: no silent loss)."""

from __future__ import annotations

import pandas as pd

from ingestion.crm.mapping import load_field_map, prepare
from revisit.settings import DEV_ID_KEY


def _customers(**overrides: object) -> pd.DataFrame:
    row = {
        "id": "c1",
        "business_id": "b1",
        "phone": "+7 916 123-45-67",
        "name": "Anna",
        "birthday": "1990-05-01",
        "gender": "f",
        "marketing_consent": "true",
        "created_at": "2026-01-01T10:00:00Z",
        "updated_at": "2026-01-02T10:00:00Z",
    }
    return pd.DataFrame([{**row, **overrides}])


def _prepare(frame: pd.DataFrame):
    entity = load_field_map().entity("customers")
    return prepare(
        entity, frame, source_kind="crm_file", row_ref=pd.Series(["line 2"]), regions={"b1": "RU"},
        id_key=DEV_ID_KEY,
    )  # fmt: skip


def test_impossible_birthday_drops_the_value_and_keeps_the_customer() -> None:
    prepared = _prepare(_customers(birthday="1990-02-30"))
    assert len(prepared.frame) == 1
    assert prepared.frame["birthday"].iat[0] is None
    assert prepared.frame["phone_e164"].iat[0] == "+79161234567"
    (reason,) = prepared.quarantine["reason"]
    assert "1990-02-30" in reason and "row kept" in reason
    assert prepared.quarantine["field"].tolist() == ["birthday"]


def test_suite_failure_on_an_optional_field_names_value_and_rule() -> None:
    prepared = _prepare(_customers(gender="x"))
    assert len(prepared.frame) == 1
    assert prepared.frame["gender"].iat[0] == ""  # missing, as the column spells it
    (reason,) = prepared.quarantine["reason"]
    assert "'x'" in reason and "expected one of" in reason and "row kept" in reason


def test_bad_essential_field_still_rejects_the_row() -> None:
    prepared = _prepare(_customers(phone="12"))
    assert prepared.frame.empty
    assert prepared.quarantine["field"].tolist() == ["phone_e164"]
    assert "row kept" not in prepared.quarantine["reason"].iat[0]
