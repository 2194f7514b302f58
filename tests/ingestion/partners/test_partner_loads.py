"""Partner feeds, offers and the registry end to end on the real embedded ClickHouse."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

import warehouse
from ingestion.identity import customer_id
from ingestion.partners import (
    DEFAULT_REGISTRY_PATH,
    FeedFormatError,
    PartnerConfig,
    load_offers,
    load_partner_feeds,
)
from revisit.settings import DEV_ID_KEY, Settings

PHONE = "+79161234567"
PHONE_ID = customer_id(pd.Series([PHONE]), DEV_ID_KEY)[0]


def jsonl(path: Path, records: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def canonical(event_id: str, **fields: object) -> dict[str, object]:
    return {
        "event_id": event_id,
        "partner_id": "p1",
        "event_type": "accrual",
        "phone": PHONE,
        "amount": "10.50",
        "currency": "RUB",
        "occurred_at": "2024-03-01T10:00:00Z",
        "offer_id": "OFF-1",
        **fields,
    }


def write_feeds(src: Path) -> None:
    """One folder per partner in its own format (SOURCES.md), with some bad rows."""
    partners = src / "partners"
    jsonl(
        partners / "p1" / "events_2024-03-01.jsonl",
        [canonical("c1"), canonical("c2", event_type="target_action", amount="0.00")],
    )
    csv = (
        "Номер операции;Тип;Телефон;Сумма;Валюта;Дата;Акция\r\n"
        "R-1;Начисление;8 (916) 123-45-67;1 234,50;RUB;01.03.2024 12:00;OFF-1\r\n"
        "R-2;Списание;8 916 123 45 67;99,90;RUB;02.03.2024;\r\n"
        "R-3;Начисление;12345;10,00;RUB;02.03.2024;\r\n"  # bad phone
        "R-4;Начисление;+79161234567;12,3,4;RUB;02.03.2024;\r\n"  # bad amount
        "R-5;Начисление;+79161234567;10,00;RUB;31.02.2024;\r\n"  # bad date
    )
    (partners / "p2").mkdir(parents=True)
    (partners / "p2" / "export_202403.csv").write_bytes(("\ufeff" + csv).encode("utf-8"))
    batch = {
        "batch": {"id": "B1"},
        "items": [
            {
                "id": "n1",
                "kind": "earn",
                "customer": {"msisdn": "77011234567"},
                "money": {"amount_minor": 150000, "currency": "KZT"},
                "ts": "2024-03-01T15:00:00+05:00",
                "promo": {"id": "OFF-2"},
            },
            {
                "id": "n2",
                "kind": "gift",  # not a known event type
                "customer": {"msisdn": "77011234567"},
                "money": {"amount_minor": 100, "currency": "KZT"},
                "ts": "2024-03-01T15:00:00+05:00",
                "promo": None,
            },
        ],
    }
    (partners / "p3").mkdir(parents=True)
    (partners / "p3" / "batch_0001.json").write_text(json.dumps(batch))
    (partners / "p3" / "batch_0002.json").write_text('{"batch": {"id": "B2"}, "items": [')


def events(client) -> list[tuple]:  # type: ignore[no-untyped-def]
    return client.query(
        "SELECT partner_id, event_id, event_type, phone_e164, customer_id, amount, currency,"
        " occurred_at, offer_id FROM raw.partner_events FINAL ORDER BY partner_id, event_id"
    ).result_rows


def quarantined(client, kind: str) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    rows = client.query(
        "SELECT row_ref, field, reason FROM raw.quarantine WHERE source_kind = {k:String}",
        parameters={"k": kind},
    ).result_rows
    return {ref: (field, reason) for ref, field, reason in rows}


def test_three_formats_load_into_canonical_events(settings: Settings, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_feeds(src)
    with warehouse.connect(settings.warehouse_dsn) as client:
        results, errors = load_partner_feeds(client, src / "partners", id_key=DEV_ID_KEY)
        rows = events(client)
        bad = quarantined(client, "partner_feed")
        sources = client.query("SELECT DISTINCT _source FROM raw.partner_events").result_rows

    kz = "+77011234567"
    assert rows == [
        ("p1", "c1", "accrual", PHONE, PHONE_ID, Decimal("10.50"), "RUB",
         datetime(2024, 3, 1, 10), "OFF-1"),
        ("p1", "c2", "target_action", PHONE, PHONE_ID, Decimal("0.00"), "RUB",
         datetime(2024, 3, 1, 10), "OFF-1"),
        # p2 is in Asia/Yekaterinburg (UTC+5): local 12:00 → 07:00 UTC, a bare date is
        # local midnight → 19:00 UTC the day before.
        ("p2", "R-1", "accrual", PHONE, PHONE_ID, Decimal("1234.50"), "RUB",
         datetime(2024, 3, 1, 7), "OFF-1"),
        ("p2", "R-2", "redemption", PHONE, PHONE_ID, Decimal("99.90"), "RUB",
         datetime(2024, 3, 1, 19), None),
        ("p3", "n1", "accrual", kz, customer_id(pd.Series([kz]), DEV_ID_KEY)[0],
         Decimal("1500.00"), "KZT", datetime(2024, 3, 1, 10), "OFF-2"),
    ]  # fmt: skip
    assert bad["line 4"][0] == "phone_e164" and "'12345'" in bad["line 4"][1]
    assert bad["line 5"] == ("amount", "amount '12,3,4' is not a number")
    assert bad["line 6"][0] == "occurred_at" and "'31.02.2024'" in bad["line 6"][1]
    assert bad["item 2"][0] == "event_type" and "gift" in bad["item 2"][1]
    assert len(bad) == 4
    # The unparseable file is reported by name; every other file still loaded.
    assert [(e.partner_id, e.path.name) for e in errors] == [("p3", "batch_0002.json")]
    assert "not valid JSON" in errors[0].error and "batch_0002.json" in str(errors[0])
    loaded = {r.batch_id.split("/")[1]: (r.rows_loaded, r.rows_quarantined) for r in results}
    assert loaded == {
        "events_2024-03-01.jsonl": (2, 0),
        "export_202403.csv": (2, 3),
        "batch_0001.json": (1, 1),
    }
    assert ("partners/p2/export_202403.csv",) in sources


def test_reload_is_idempotent_and_redelivery_collapses(settings: Settings, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_feeds(src)
    with warehouse.connect(settings.warehouse_dsn) as client:
        first, _ = load_partner_feeds(client, src / "partners", id_key=DEV_ID_KEY)
        counts = [
            client.command(f"SELECT count() FROM raw.{t}") for t in ("partner_events", "quarantine")
        ]
        again, errors = load_partner_feeds(client, src / "partners", id_key=DEV_ID_KEY)
        assert all(r.skipped for r in again) and len(again) == len(first) == 3
        assert len(errors) == 1  # the broken file is reported again, not forgotten
        assert (
            [
                client.command(f"SELECT count() FROM raw.{t}")
                for t in ("partner_events", "quarantine")
            ]
            == counts
            == [5, 4]
        )

        # p1 re-delivers c1 (corrected amount) in a new file: one copy, the later one.
        jsonl(
            src / "partners" / "p1" / "events_2024-03-02.jsonl", [canonical("c1", amount="11.00")]
        )
        third, _ = load_partner_feeds(client, src / "partners", id_key=DEV_ID_KEY)
        assert [r.rows_loaded for r in third if not r.skipped] == [1]
        rows = client.query(
            "SELECT event_id, amount FROM raw.partner_events FINAL WHERE partner_id = 'p1' "
            "ORDER BY event_id"
        ).result_rows
    assert rows == [("c1", Decimal("11.00")), ("c2", Decimal("0.00"))]


def test_a_new_partner_by_configuration_only(settings: Settings, tmp_path: Path) -> None:
    """A Berlin partner (DST) with English headers, `,` separator and dot decimals: a
    registry entry for the existing delimited adapter, nothing else."""
    registry_file = tmp_path / "partners.yaml"
    registry_file.write_text(
        DEFAULT_REGISTRY_PATH.read_text(encoding="utf-8")
        + """
  p4:
    adapter: delimited
    files: "report_*.txt"
    timezone: Europe/Berlin
    currency: EUR
    default_region: DE
    event_types: {Bonus: accrual, Storno: reversal}
    options:
      separator: ","
      decimal: "."
      encoding: utf-8
      date_formats: ["%Y-%m-%d %H:%M"]
      columns: {event_id: ID, event_type: Type, phone: Mobile, amount: Amount,
                occurred_at: Time, offer_id: Promo}
""",
        encoding="utf-8",
    )
    folder = tmp_path / "src" / "partners" / "p4"
    folder.mkdir(parents=True)
    (folder / "report_1.txt").write_text(
        "ID,Type,Mobile,Amount,Time,Promo\n"
        "w1,Bonus,0151 23456789,12.34,2024-01-15 10:00,\n"  # CET, UTC+1
        "s1,Storno,0151 23456789,-12.34,2024-07-15 10:00,P9\n"  # CEST, UTC+2
    )
    (tmp_path / "src" / "partners" / "p5").mkdir()  # a partner nobody registered
    with warehouse.connect(settings.warehouse_dsn) as client:
        results, errors = load_partner_feeds(
            client, tmp_path / "src" / "partners", registry_file, id_key=DEV_ID_KEY
        )
        rows = client.query(
            "SELECT event_id, event_type, phone_e164, amount, currency, occurred_at, offer_id "
            "FROM raw.partner_events FINAL ORDER BY event_id"
        ).result_rows
    assert [r.rows_loaded for r in results] == [2]
    de = "+4915123456789"
    assert rows == [
        ("s1", "reversal", de, Decimal("-12.34"), "EUR", datetime(2024, 7, 15, 8), "P9"),
        ("w1", "accrual", de, Decimal("12.34"), "EUR", datetime(2024, 1, 15, 9), None),
    ]
    assert len(errors) == 1 and errors[0].path.name == "p5"
    assert "not in the partner registry" in errors[0].error


def test_registry_mapping_can_be_passed_directly(settings: Settings, tmp_path: Path) -> None:
    jsonl(tmp_path / "partners" / "acme" / "events_1.jsonl", [canonical("a1")])
    registry = {"acme": PartnerConfig(partner_id="acme", adapter="canonical_jsonl")}
    with warehouse.connect(settings.warehouse_dsn) as client:
        results, errors = load_partner_feeds(
            client, tmp_path / "partners", registry, id_key=DEV_ID_KEY
        )
        partner = client.command("SELECT any(partner_id) FROM raw.partner_events")
    assert (errors, [r.rows_loaded for r in results], partner) == ([], [1], "acme")


def offer(offer_id: str, **fields: object) -> dict[str, object]:
    return {
        "offer_id": offer_id,
        "publisher_business_id": "b1",
        "title": "Маникюр −20%",
        "distributor_business_ids": ["b2", "b3"],
        "reward_per_client": "350.00",
        "discount_pct": 20,
        "cashback_pct": "5.5",
        "currency": "RUB",
        "capacity": 100,
        "audience": {"min_age": 18, "max_age": 45, "gender": "f"},
        "valid_from": "2024-03-01",
        "valid_to": "2024-05-31",
        **fields,
    }


def test_offers_load_with_bad_rows_quarantined(settings: Settings, tmp_path: Path) -> None:
    offers = jsonl(
        tmp_path / "src" / "partners" / "offers.jsonl",
        [
            offer("o1"),
            offer("o2", audience={}, discount_pct=None, capacity=None),
            offer("o3", reward_per_client="3,50"),
            offer("o4", valid_to="2024-13-01"),
            offer("o5", cashback_pct=150),
        ],
    )
    with warehouse.connect(settings.warehouse_dsn) as client:
        first = load_offers(client, offers)
        again = load_offers(client, offers)
        rows = client.query(
            "SELECT offer_id, distributor_business_ids, reward_per_client, discount_pct, "
            "cashback_pct, capacity, audience_min_age, audience_gender, valid_from, valid_to "
            "FROM raw.partner_offers FINAL ORDER BY offer_id"
        ).result_rows
        bad = quarantined(client, "partner_offers")
    assert (first.rows_loaded, first.rows_quarantined, again.skipped) == (2, 3, True)
    assert rows[0][:8] == (
        "o1", ["b2", "b3"], Decimal("350.00"), Decimal("20"), Decimal("5.5"), 100, 18, "f",
    )  # fmt: skip
    assert str(rows[0][8]) == "2024-03-01" and str(rows[0][9]) == "2024-05-31"
    assert rows[1][:8] == (
        "o2",
        ["b2", "b3"],
        Decimal("350.00"),
        None,
        Decimal("5.5"),
        None,
        None,
        None,
    )
    assert bad == {
        "line 3": ("reward_per_client", "amount '3,50' is not a number"),
        "line 4": ("valid_to", "date '2024-13-01' is not YYYY-MM-DD"),
        "line 5": ("cashback_pct", "percentage 150 is not between 0 and 100"),
    }


def test_offers_file_that_is_not_json_lines_fails_naming_it(
    settings: Settings, tmp_path: Path
) -> None:
    offers = tmp_path / "offers.jsonl"
    offers.write_text("offer_id,title\no1,x\n")
    with warehouse.connect(settings.warehouse_dsn) as client:
        with pytest.raises(FeedFormatError, match=r"offers\.jsonl: no line is a JSON object"):
            load_offers(client, offers)
        assert client.command("SELECT count() FROM raw.partner_offers") == 0
