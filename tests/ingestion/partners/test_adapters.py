"""Adapters and parsers on their own: each partner format with its quirks → canonical rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import pytest

from ingestion.partners.adapters import STAGED_COLUMNS
from ingestion.partners.parsing import (
    FeedFormatError,
    parse_local_timestamps,
    parse_minor_units,
    parse_money,
)
from ingestion.partners.registry import PartnerConfig, RegistryError, load_registry, parse_registry


def utc(*args: int) -> pd.Timestamp:
    return pd.Timestamp(datetime(*args, tzinfo=UTC))


def csv_partner(**overrides: object) -> PartnerConfig:
    registry = load_registry()
    return registry["p2"].model_copy(update=overrides)


CSV_HEADER = "Номер операции;Тип;Телефон;Сумма;Валюта;Дата;Акция"


def test_money_parsing_is_decimal_exact() -> None:
    assert parse_money("1 234,56", decimal_sep=",") == (Decimal("1234.56"), None)
    assert parse_money("0.10") == (Decimal("0.10"), None)
    assert parse_money(Decimal("-5")) == (Decimal("-5.00"), None)
    assert parse_money("12.345")[1] == "amount 12.345 has more than 2 decimal places"
    assert parse_money("abc")[1] == "amount 'abc' is not a number"
    assert parse_money("1.5", decimal_sep=",")[0] is None
    assert parse_money(0.1)[0] is None  # a float already lost precision
    assert parse_money("NaN")[0] is None
    assert parse_money("1e20")[1] == "amount 1E+20 exceeds Decimal(18, 2)"
    assert parse_money("")[1] == "amount is missing"


def test_minor_units_use_the_currency_exponent() -> None:
    assert parse_minor_units(123456, "RUB") == (Decimal("1234.56"), None)
    assert parse_minor_units("500", "JPY") == (Decimal("500.00"), None)
    assert parse_minor_units(7, "KZT") == (Decimal("0.07"), None)
    assert parse_minor_units("12.5", "RUB")[0] is None
    assert parse_minor_units(Decimal("12.5"), "RUB")[0] is None


def test_local_dates_convert_to_utc_across_dst() -> None:
    values = [
        "15.01.2024 10:30",  # CET, UTC+1
        "15.07.2024 10:30",  # CEST, UTC+2
        "31.03.2024 02:30",  # skipped hour in spring → first valid instant
        "27.10.2024 02:30",  # repeated hour in autumn → first (summer) occurrence
        "15.07.2024",  # date only: local midnight
        "2024-07-15",  # wrong format
        "",
    ]
    stamps, errors = parse_local_timestamps(values, ["%d.%m.%Y %H:%M", "%d.%m.%Y"], "Europe/Berlin")
    assert list(stamps[:5]) == [
        utc(2024, 1, 15, 9, 30),
        utc(2024, 7, 15, 8, 30),
        utc(2024, 3, 31, 1, 0),
        utc(2024, 10, 27, 0, 30),
        utc(2024, 7, 14, 22, 0),
    ]
    assert pd.isna(stamps[5]) and pd.isna(stamps[6])
    assert errors[:5] == [None] * 5
    assert errors[5] == "date '2024-07-15' does not match %d.%m.%Y %H:%M or %d.%m.%Y"
    assert errors[6] == "date is missing"


def test_csv_export_with_bom_semicolons_decimal_comma_and_russian_headers() -> None:
    partner = csv_partner(timezone="Europe/Moscow")
    text = (
        f"{CSV_HEADER}\r\n"
        "A-1;Начисление;8 (916) 123-45-67;1 234,50;RUB;01.03.2024 12:00;OFF-1\r\n"
        'A-2;списание;+7 916 123 45 67;"99,90";;02.03.2024;\r\n'
    )
    parsed = partner.make_adapter().parse(("\ufeff" + text).encode("utf-8"), "export_1.csv")
    rows = parsed.rows
    assert list(rows.columns) == list(STAGED_COLUMNS)
    assert rows["event_id"].tolist() == ["A-1", "A-2"]
    assert rows["amount"].tolist() == [Decimal("1234.50"), Decimal("99.90")]
    # Moscow is UTC+3 all year.
    assert rows["occurred_at"].tolist() == [utc(2024, 3, 1, 9), utc(2024, 3, 1, 21)]
    assert rows["currency"].tolist() == ["RUB", "RUB"]  # empty → the partner's currency
    assert rows["offer_id"].tolist() == ["OFF-1", None]
    assert rows["row_ref"].tolist() == ["line 2", "line 3"]
    assert [partner.canonical_event_type(v) for v in rows["event_type"]] == [
        "accrual",
        "redemption",
    ]
    assert json.loads(rows["raw_payload"][0])["Телефон"] == "8 (916) 123-45-67"


def test_csv_row_with_wrong_field_count_is_rejected_alone() -> None:
    text = f"{CSV_HEADER}\nA-1;Начисление;+79161234567;10,00;RUB;01.03.2024;\nA-2;broken\n"
    parsed = csv_partner().make_adapter().parse(text.encode(), "export_1.csv")
    assert parsed.rows["event_id"].tolist() == ["A-1"]
    assert parsed.rejects[0]["row_ref"] == "line 3"
    assert "2 fields, the header has 7" in parsed.rejects[0]["reason"]


def test_csv_with_wrong_separator_is_a_file_error() -> None:
    text = CSV_HEADER.replace(";", ",") + "\nA-1,Начисление,+79161234567,10,RUB,01.03.2024,\n"
    with pytest.raises(FeedFormatError, match=r"export_9\.csv: missing column\(s\) 'Номер"):
        csv_partner().make_adapter().parse(text.encode(), "export_9.csv")


def test_csv_in_cp1251_is_a_file_error() -> None:
    content = f"{CSV_HEADER}\nA-1;Начисление;+79161234567;10;RUB;01.03.2024;\n".encode("cp1251")
    with pytest.raises(FeedFormatError, match=r"export_1\.csv: not valid utf-8-sig text"):
        csv_partner().make_adapter().parse(content, "export_1.csv")


def test_nested_json_minor_units_and_epoch_or_iso_timestamps() -> None:
    partner = load_registry()["p3"]
    document = {
        "batch": {"id": "b-1", "created": "2024-03-01T00:00:00Z"},
        "items": [
            {
                "id": "e1",
                "kind": "earn",
                "customer": {"msisdn": "77011234567"},
                "money": {"amount_minor": 123456, "currency": "KZT"},
                "ts": "2024-03-01T10:00:00+05:00",
                "promo": {"id": "OFF-9"},
            },
            {
                "id": "e2",
                "kind": "burn",
                "customer": {"msisdn": "+7 701 123 45 67"},
                "money": {"amount_minor": 500, "currency": "JPY"},
                "ts": 1709287200,
                "promo": None,
            },
            "not an item",
        ],
    }
    parsed = partner.make_adapter().parse(json.dumps(document).encode(), "batch_1.json")
    rows = parsed.rows
    assert rows["amount"].tolist() == [Decimal("1234.56"), Decimal("500.00")]
    assert rows["currency"].tolist() == ["KZT", "JPY"]
    assert rows["occurred_at"].tolist() == [utc(2024, 3, 1, 5), utc(2024, 3, 1, 10)]
    assert rows["phone"].tolist() == ["77011234567", "+7 701 123 45 67"]
    assert rows["offer_id"].tolist() == ["OFF-9", None]
    assert [partner.canonical_event_type(v) for v in rows["event_type"]] == [
        "accrual",
        "redemption",
    ]
    assert parsed.rejects == [
        {
            "row_ref": "item 3",
            "field": "*",
            "reason": "not a JSON object",
            "raw_row": '"not an item"',
        }
    ]


def test_truncated_nested_json_is_a_file_error() -> None:
    partner = load_registry()["p3"]
    with pytest.raises(FeedFormatError, match=r"batch_2\.json: not valid JSON \(line 1"):
        partner.make_adapter().parse(b'{"batch": 1, "items": [{"id": ', "batch_2.json")
    with pytest.raises(FeedFormatError, match="no list of events at 'items'"):
        partner.make_adapter().parse(b'{"batch": 1, "events": []}', "batch_3.json")


def test_canonical_jsonl_keeps_decimals_exact_and_rejects_bad_lines() -> None:
    partner = load_registry()["p1"]
    content = (
        b'{"event_id": "x1", "event_type": "accrual", "phone": "+79161234567", '
        b'"amount": 0.1, "currency": "RUB", "occurred_at": "2024-03-01T10:00:00Z"}\n'
        b"{oops\n"
        b'{"event_id": "x2", "event_type": "reversal", "phone": "+79161234567", '
        b'"amount": "-10.00", "occurred_at": "2024-03-01T10:00:00.250+03:00", "offer_id": "O"}\n'
    )
    parsed = partner.make_adapter().parse(content, "events_1.jsonl")
    # A JSON number is read as Decimal, never float: 0.1 stays exactly 0.10.
    assert parsed.rows["amount"].tolist() == [Decimal("0.10"), Decimal("-10.00")]
    assert parsed.rows["currency"].tolist() == ["RUB", "RUB"]
    assert parsed.rows["occurred_at"].tolist() == [
        utc(2024, 3, 1, 10),
        utc(2024, 3, 1, 7, 0, 0, 250000),
    ]
    assert parsed.rejects[0]["row_ref"] == "line 2"
    assert parsed.rejects[0]["reason"].startswith("not valid JSON")
    with pytest.raises(FeedFormatError, match=r"events_2\.jsonl: no line is a JSON object"):
        partner.make_adapter().parse(b"garbage\nmore garbage\n", "events_2.jsonl")


def test_registry_rejects_bad_entries() -> None:
    good = {"adapter": "delimited", "timezone": "Europe/Berlin"}
    assert parse_registry({"partners": {"x": good}})["x"].timezone == "Europe/Berlin"
    for bad, message in [
        ({"adapter": "fax"}, "unknown partner adapter 'fax'"),
        ({"adapter": "delimited", "timezone": "Mars/Olympus"}, "unknown IANA time zone"),
        ({"adapter": "delimited", "options": {"separatr": ","}}, "separatr"),
        ({"adapter": "nested_json", "event_types": {"x": "refund"}}, "refund"),
    ]:
        with pytest.raises(RegistryError, match=message):
            parse_registry({"partners": {"x": bad}})
