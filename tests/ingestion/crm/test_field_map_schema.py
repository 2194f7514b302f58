"""Field maps express real exports (issue #15): value maps, localized booleans, decimal
commas, several date formats, a source time zone (DST-correct), constants and derived
ids — and an invalid map is refused on load, naming file, entity, field and key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ingestion.crm.mapping import (
    EXAMPLE_FIELD_MAPS,
    FieldMapError,
    load_field_map,
    parse_field_map,
    prepare,
)
from revisit.settings import DEV_ID_KEY

BERLIN_MAP = {
    "name": "berlin",
    "timezone": "Europe/Berlin",
    "entities": {
        "appointments": {
            "fields": {
                "b": {"column": "business_id", "constant": "b9"},
                "client": {"column": "source_customer_id", "required": True},
                "no": {"column": "appointment_id", "required": True},
                "state": {"column": "status", "required": True,
                          "values": {"fertig": "completed", "storniert": "cancelled"}},
                "when": {"column": "scheduled_at", "type": "timestamp", "required": True,
                         "formats": ["%d.%m.%Y %H:%M"]},
                "sum": {"column": "amount", "type": "decimal", "nullable": True,
                        "decimal": ",", "thousands": "."},
                "cur": {"column": "currency", "constant": "EUR"},
                "changed": {"column": "updated_at", "type": "timestamp", "required": True},
            }
        }
    },
}  # fmt: skip


def _prepare(rows: list[dict], doc: dict = BERLIN_MAP):
    entity = parse_field_map(doc, "berlin.yaml").entity("appointments")
    frame = pd.DataFrame(rows, dtype=object)
    refs = pd.Series([f"line {i + 2}" for i in range(len(rows))])
    return prepare(entity, frame, source_kind="crm_file", row_ref=refs, id_key=DEV_ID_KEY)


def _row(**over: str) -> dict:
    base = {"client": "k1", "no": "1", "state": "fertig", "when": "15.01.2025 10:00",
            "sum": "1.500,50", "changed": "2025-01-15T12:00:00"}  # fmt: skip
    return {**base, **over}


def test_local_times_convert_to_utc_across_dst_and_offsets_are_kept() -> None:
    prepared = _prepare(
        [
            _row(no="winter", when="15.01.2025 10:00"),  # CET, UTC+1
            _row(no="summer", when="15.07.2025 10:00"),  # CEST, UTC+2
            _row(no="before", when="30.03.2025 01:30"),  # just before the spring change
            _row(no="after", when="30.03.2025 03:30"),  # just after it
            _row(no="offset", when="2025-07-15T10:00:00+05:00"),  # its own offset wins
            _row(no="iso", when="2025-07-15T10:00:00"),  # naive ISO: local time too
            _row(no="gap", when="30.03.2025 02:30"),  # does not exist in Berlin
            _row(no="twice", when="26.10.2025 02:30"),  # happens twice: not guessed
        ]
    )
    got = dict(zip(prepared.frame["appointment_id"], prepared.frame["scheduled_at"], strict=True))
    utc = {k: v.strftime("%Y-%m-%d %H:%M") for k, v in got.items()}
    assert utc == {
        "winter": "2025-01-15 09:00", "summer": "2025-07-15 08:00",
        "before": "2025-03-30 00:30", "after": "2025-03-30 01:30",
        "offset": "2025-07-15 05:00", "iso": "2025-07-15 08:00",
    }  # fmt: skip
    assert str(prepared.frame["scheduled_at"].dt.tz) == "UTC"
    reasons = prepared.quarantine["reason"].tolist()
    assert len(reasons) == 2
    assert all("naive times are Europe/Berlin" in r for r in reasons)
    assert any("'30.03.2025 02:30'" in r for r in reasons)
    # updated_at (naive ISO) is a Berlin local time as well.
    assert prepared.frame["updated_at"].iat[0] == pd.Timestamp("2025-01-15 11:00", tz="UTC")


def test_decimal_comma_thousands_value_map_and_constants() -> None:
    prepared = _prepare(
        [
            _row(no="1", sum="1.500,50"),
            _row(no="2", sum="12,5"),
            _row(no="3", sum="", state="storniert"),
            _row(no="4", sum="1,234"),  # three decimals: no amount this source writes
            _row(no="5", state="verschoben"),
        ]
    )
    frame = prepared.frame.set_index("appointment_id")
    assert frame.loc["1", "amount"] == Decimal("1500.50")
    assert frame.loc["2", "amount"] == Decimal("12.50")
    assert pd.isna(frame.loc["3", "amount"]) and frame.loc["3", "status"] == "cancelled"
    assert set(frame["currency"]) == {"EUR"} and set(frame["business_id"]) == {"b9"}
    # A bad optional amount is dropped (and quarantined), the appointment kept; an unknown
    # status costs the row.
    assert set(frame.index) == {"1", "2", "3", "4"} and pd.isna(frame.loc["4", "amount"])
    reasons = dict(zip(prepared.quarantine["row_ref"], prepared.quarantine["reason"], strict=True))
    assert "'1,234'" in reasons["line 5"] and "decimal separator ','" in reasons["line 5"]
    assert reasons["line 5"].endswith("row kept")
    assert reasons["line 6"] == (
        "state: unknown value 'verschoben' (expected one of 'fertig', 'storniert')"
    )


def test_russian_example_types_customers() -> None:
    fmap = load_field_map(EXAMPLE_FIELD_MAPS / "ru_salon.yaml")
    entity = fmap.entity("customers")
    frame = pd.DataFrame(
        [
            {"Телефон": "8 916 123-45-67", "ФИО": "Анна", "Дата рождения": "01.02.1990",
             "Пол": "Ж", "Согласие на рассылку": "да", "Дата регистрации": "10.01.2025",
             "Изменён": "10.01.2025 10:00:00"},
            {"Телефон": "+7 916 123-45-68", "ФИО": "Ирина", "Дата рождения": "1991-03-04",
             "Пол": "Ж", "Согласие на рассылку": "нет", "Дата регистрации": "10.01.2025 09:15",
             "Изменён": "10.01.2025 10:00"},
        ],
        dtype=object,
    )  # fmt: skip
    prepared = prepare(
        entity, frame, source_kind="crm_file", row_ref=pd.Series(["2", "3"]),
        regions={"salon": "RU"}, business_id="salon", id_key=DEV_ID_KEY,
    )  # fmt: skip
    assert prepared.quarantine.empty
    out = prepared.frame
    assert out["consent_marketing"].tolist() == [True, False]
    assert [str(d) for d in out["birthday"]] == ["1990-02-01", "1991-03-04"]
    assert out["created_at"].dt.strftime("%Y-%m-%d %H:%M").tolist() == [
        "2025-01-09 21:00", "2025-01-10 06:15"
    ]  # fmt: skip
    assert out["source_customer_id"].tolist() == out["customer_id"].tolist()
    assert set(out["business_id"]) == {"salon"}


def test_phone_of_a_business_of_unknown_country_says_what_to_do() -> None:
    entity = load_field_map().entity("customers")
    frame = pd.DataFrame([{"id": "c1", "business_id": "bx", "phone": "8 916 123 45 67",
                           "updated_at": "2025-01-01T00:00:00Z"}])  # fmt: skip
    prepared = prepare(
        entity, frame, source_kind="crm_file", row_ref=pd.Series(["2"]), id_key=DEV_ID_KEY
    )
    (reason,) = prepared.quarantine["reason"]
    assert "ZZ" not in reason and "no country known for business 'bx'" in reason
    assert "'8 916 123 45 67'" in reason


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d["entities"]["appointments"]["fields"]["state"].update(tpye="string"),
         "entity appointments, field 'state', key tpye: unknown key"),
        (lambda d: d.update(timezone="Moscow"),
         "key timezone: unknown IANA time zone 'Moscow'"),
        (lambda d: d["entities"]["appointments"]["fields"]["sum"].update(values={"a": "b"}),
         "entity appointments, field 'sum': `values` (a value map) is for string fields"),
        (lambda d: d["entities"]["appointments"]["fields"]["when"].update(type="datetime"),
         "entity appointments, field 'when', key type: Input should be"),
        (lambda d: d["entities"].update(clients=d["entities"]["appointments"]),
         "entity clients"),
        (lambda d: d.update(files={"csv": {"encoding": "win1251x"}}),
         "key files.csv.encoding: unknown encoding 'win1251x'"),
    ],
)  # fmt: skip
def test_invalid_field_map_names_file_entity_field_and_key(tmp_path: Path, edit, expected) -> None:
    doc = yaml.safe_load(yaml.safe_dump(BERLIN_MAP))
    edit(doc)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(FieldMapError) as caught:
        load_field_map(path)
    assert str(path) in str(caught.value) and expected in str(caught.value)


def test_field_map_that_is_not_yaml_or_missing(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("entities: {customers: [\n", encoding="utf-8")
    with pytest.raises(FieldMapError, match="not valid YAML"):
        load_field_map(broken)
    with pytest.raises(FieldMapError, match="cannot read it"):
        load_field_map(tmp_path / "absent.yaml")
