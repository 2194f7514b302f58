"""Segment exports for marketers: per business, segment sizes and member lists.

Files per business, in a folder named after the business (`marts.dim_businesses.name`,
made a safe file name; see `folder_names`) under the output directory:
- CSV: `segment_sizes.csv` and `members.csv`, UTF-8 with a BOM so Excel opens Cyrillic
  correctly;
- XLSX: `segments.xlsx` with a segments sheet and a customers sheet (column widths,
  frozen header row, filters, percent and money formats);
- Parquet: the same two tables as `.parquet`, for data tools.

Every member row carries its segment's label and recommended action. Labels, actions and
column headers are in Russian or English (`Lang`): by default the business's country
decides (`default_lang`). Parquet keeps the stable snake_case column names (tools read
it by name); CSV and XLSX get the headers a marketer reads.

Phones are written so that spreadsheets and pandas keep them text: in the international
format ("+7 916 123-45-67"), which neither Excel nor `pandas.read_csv` turns into a
number (an E.164 "+79161234567" becomes the integer 79161234567), and as text cells in
XLSX. Every other text cell that starts with = + - @ or a tab/CR gets a leading
apostrophe (OWASP's CSV-injection advice), so a CRM name like `=HYPERLINK(...)` is shown,
never evaluated. Phones are exempt because they come out of the phone formatter, which
only ever emits '+', digits, spaces and hyphens.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pandas as pd
import phonenumbers
from clickhouse_connect.driver.client import Client

from warehouse.spreadsheet import neutralise


class ExportFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"
    xlsx = "xlsx"


class Lang(StrEnum):
    ru = "ru"
    en = "en"


class ExportError(ValueError):
    """The export request cannot be served (unknown business or segment)."""


@dataclass(frozen=True)
class ExportedBusiness:
    business_id: str
    name: str
    lang: Lang
    customers: int
    folder: Path
    files: tuple[Path, ...]


# Countries whose marketers read Russian: the default language of their exports.
RUSSIAN_SPEAKING = frozenset({"RU", "BY", "KZ", "KG", "UZ", "TJ", "TM", "AM", "AZ", "MD"})

# Column headers of CSV and XLSX, per language; Parquet keeps the keys.
HEADERS: dict[Lang, dict[str, str]] = {
    Lang.en: {
        "segment_label": "Segment",
        "customers": "Customers",
        "share": "Share",
        "description": "Description",
        "recommended_action": "Recommended action",
        "segment": "Segment key",
        "phone": "Phone",
        "name": "Name",
        "rfm_cell": "RFM cell",
        "recency_days": "Days since last visit",
        "frequency": "Visits",
        "monetary": "Spent",
        "currency": "Currency",
        "contactable": "May be messaged",
        "p_revisit": "Revisit probability",
        "revisit_decile": "Revisit decile",
        "business_id": "Business id",
    },
    Lang.ru: {
        "segment_label": "Сегмент",
        "customers": "Клиентов",
        "share": "Доля",
        "description": "Описание",
        "recommended_action": "Рекомендуемое действие",
        "segment": "Ключ сегмента",
        "phone": "Телефон",
        "name": "Имя",
        "rfm_cell": "RFM-ячейка",
        "recency_days": "Дней с последнего визита",
        "frequency": "Визитов",
        "monetary": "Потрачено",
        "currency": "Валюта",
        "contactable": "Можно писать",
        "p_revisit": "Вероятность визита",
        "revisit_decile": "Дециль вероятности",
        "business_id": "ID бизнеса",
    },
}
SHEETS = {Lang.en: ("Segments", "Customers"), Lang.ru: ("Сегменты", "Клиенты")}
YES_NO = {Lang.en: ("yes", "no"), Lang.ru: ("да", "нет")}
# Fractions: XLSX shows them as percentages, CSV writes percent numbers ("Share, %").
PERCENT_COLUMNS = ("share", "p_revisit")
MONEY_COLUMNS = ("monetary",)
SCORE_COLUMNS = ("p_revisit", "revisit_decile")

SIZES_COLUMNS = ["segment_label", "customers", "share", "description", "recommended_action",
                 "segment"]  # fmt: skip
MEMBERS_COLUMNS = ["phone", "name", "segment_label", "recommended_action", "rfm_cell",
                   "recency_days", "frequency", "monetary", "currency", "contactable",
                   "p_revisit", "revisit_decile", "segment", "business_id"]  # fmt: skip

REQUIRED_TABLES = ("marts.dim_businesses", "marts.rfm_segments", "marts.customer_rfm",
                   "marts.dim_customers")  # fmt: skip
BUSINESSES_SQL = "SELECT business_id, name, country FROM marts.dim_businesses ORDER BY business_id"

SEGMENTS_SQL = """
SELECT segment, sort_order, segment_label, description, recommended_action,
       segment_label_ru, description_ru, recommended_action_ru
FROM marts.rfm_segments ORDER BY sort_order
"""

SIZES_SQL = """
SELECT business_id, segment, customers, share
FROM (
    SELECT r.business_id AS business_id, r.segment AS segment, count() AS customers,
           count() / sum(count()) OVER (PARTITION BY r.business_id) AS share
    FROM marts.customer_rfm AS r
    WHERE {where}
    GROUP BY business_id, segment
)
WHERE {segment_where}
"""

MEMBERS_SQL = """
SELECT r.business_id AS business_id, c.phone_e164 AS phone, c.full_name AS name,
       r.segment AS segment, r.rfm_cell AS rfm_cell, r.recency_days AS recency_days,
       r.frequency AS frequency, r.monetary AS monetary, c.currency AS currency,
       c.contactable AS contactable{score_columns}
FROM marts.customer_rfm AS r
INNER JOIN marts.dim_customers AS c
    ON r.business_id = c.business_id AND r.customer_id = c.customer_id
{score_join}
WHERE {where} AND {segment_where}
ORDER BY business_id, monetary DESC, phone
"""

LATEST_SCORES = """
LEFT JOIN (
    SELECT business_id, customer_id, argMax(p_revisit, scored_at) AS p_revisit,
           argMax(decile, scored_at) AS revisit_decile
    FROM ml.revisit_scores GROUP BY business_id, customer_id
) AS s ON r.business_id = s.business_id AND r.customer_id = s.customer_id
"""


def default_lang(country: str | None) -> Lang:
    """Russian for businesses in Russian-speaking countries, English elsewhere."""
    return Lang.ru if (country or "").strip().upper() in RUSSIAN_SPEAKING else Lang.en


# Characters no file system or archive tool accepts in a name (Windows is the strictest).
_UNSAFE = re.compile(r'[<>:"/\\|?*]')
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.I)
MAX_NAME = 80


def safe_name(name: str, fallback: str = "business") -> str:
    """A file or folder name from a display name: Unicode letters kept (Cyrillic too),
    path separators, reserved punctuation and control characters replaced, no leading
    or trailing dots/spaces, at most MAX_NAME characters; `fallback` when nothing is
    left (so "..", "/" or "" never become a path)."""
    text = unicodedata.normalize("NFC", name)
    text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    text = _UNSAFE.sub("_", text)
    text = re.sub(r"\s+", " ", text).strip(" .")[:MAX_NAME].strip(" .")
    if not text or set(text) <= {"_"}:
        return fallback
    if _WINDOWS_RESERVED.match(text):
        text = f"{text}_"
    return text


def folder_names(businesses: Iterable[tuple[str, str]]) -> dict[str, str]:
    """{business_id: folder name} for (business_id, name) pairs. Names that collide
    (case-insensitively: macOS and Windows file systems ignore case) get the business
    id appended, so every business keeps its own folder. Computed over all businesses,
    so a business's folder does not depend on which ones an export selects."""
    pairs = sorted(businesses)
    base = {bid: safe_name(name or "", fallback=safe_name(bid, "business")) for bid, name in pairs}
    counts: dict[str, int] = {}
    for folder in base.values():
        counts[folder.casefold()] = counts.get(folder.casefold(), 0) + 1
    names = {}
    for bid, folder in base.items():
        if counts[folder.casefold()] > 1:
            folder = safe_name(f"{folder[: MAX_NAME - len(bid) - 3]} ({bid})")
        names[bid] = folder
    return names


def display_phone(e164: str) -> str:
    """The international format ("+7 916 123-45-67"): readable, and kept as text by
    Excel and pandas. A value that does not parse as a phone is treated like any other
    text (neutralised)."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return str(neutralise(e164))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _segments(client: Client) -> pd.DataFrame:
    return client.query_df(SEGMENTS_SQL)


def resolve_segments(segments: pd.DataFrame, wanted: Sequence[str]) -> list[str]:
    """Segment keys for keys or labels in either language, case-insensitive ("at_risk",
    "At risk", "под угрозой ухода"); raises ExportError naming the known ones."""
    lookup: dict[str, str] = {}
    for row in segments.itertuples(index=False):
        for text in (row.segment, row.segment_label, row.segment_label_ru):
            lookup[_fold(text)] = row.segment
    keys, unknown = [], []
    for value in wanted:
        key = lookup.get(_fold(value))
        if key is None:
            unknown.append(value)
        elif key not in keys:
            keys.append(key)
    if unknown:
        known = ", ".join(
            f"{r.segment} ({r.segment_label} / {r.segment_label_ru})"
            for r in segments.itertuples(index=False)
        )
        raise ExportError(f"unknown segment {', '.join(map(repr, unknown))}; known: {known}")
    return keys


def _fold(text: str) -> str:
    # "Can’t lose them" typed with a curly apostrophe, "ё" typed as "е", extra spaces.
    text = unicodedata.normalize("NFC", str(text)).replace("’", "'").replace("ё", "е")
    return " ".join(text.replace("Ё", "Е").split()).casefold()


def _has_scores(client: Client) -> bool:
    return bool(client.command("EXISTS TABLE ml.revisit_scores"))


def export_segments(
    client: Client,
    out_dir: Path,
    *,
    business_id: str | None = None,
    fmt: ExportFormat = ExportFormat.csv,
    lang: Lang | None = None,
    segments: Sequence[str] = (),
) -> list[ExportedBusiness]:
    """Write segment sizes and members per business; returns what was written.

    `business_id` must be a business of marts.dim_businesses (ExportError otherwise:
    it never becomes a path). `lang` None picks each business's language from its
    country. `segments` limits the export to those segments (keys or labels); sizes
    then list those segments with their share of all the business's customers.
    """
    missing = [t for t in REQUIRED_TABLES if not client.command(f"EXISTS TABLE {t}")]
    if missing:
        raise ExportError(
            f"{', '.join(missing)} missing: build the marts first (`revisit demo` or dbt build)"
        )
    businesses = _query(client, BUSINESSES_SQL, {}, ["business_id", "name", "country"])
    known = dict(zip(businesses.business_id, businesses.name, strict=True))
    if business_id is not None and business_id not in known:
        sample = ", ".join(sorted(known)[:10]) + (" …" if len(known) > 10 else "")
        raise ExportError(
            f"unknown business {business_id!r}: use a business_id of marts.dim_businesses "
            f"({sample or 'none yet: build the marts first'})"
        )
    folders = folder_names(known.items())
    countries = dict(zip(businesses.business_id, businesses.country, strict=True))
    segment_table = _segments(client)
    keys = resolve_segments(segment_table, segments) if segments else []

    where = "r.business_id = {b:String}" if business_id else "1"
    parameters: dict[str, object] = {"b": business_id} if business_id else {}
    if keys:
        parameters["s"] = keys
    scored = _has_scores(client)
    sizes = _query(
        client,
        SIZES_SQL.format(
            where=where, segment_where="segment IN {s:Array(String)}" if keys else "1"
        ),
        parameters,
        ["business_id", "segment", "customers", "share"],
    )
    member_columns = [
        "business_id", "phone", "name", "segment", "rfm_cell", "recency_days", "frequency",
        "monetary", "currency", "contactable", *(SCORE_COLUMNS if scored else ()),
    ]  # fmt: skip
    members = _query(
        client,
        MEMBERS_SQL.format(
            where=where,
            segment_where="r.segment IN {s:Array(String)}" if keys else "1",
            score_columns=", s.p_revisit AS p_revisit, s.revisit_decile AS revisit_decile"
            if scored
            else "",
            score_join=LATEST_SCORES if scored else "",
        ),
        parameters,
        member_columns,
    )
    # Businesses with customers in the RFM mart: with a segment filter, one whose
    # customers are all elsewhere still gets its (header-only) files.
    present = _query(
        client,
        f"SELECT DISTINCT r.business_id AS business_id FROM marts.customer_rfm AS r "
        f"WHERE {where} ORDER BY business_id",
        parameters,
        ["business_id"],
    )
    root = out_dir.resolve()
    exported = []
    for business in present.business_id:
        business = str(business)
        language = lang or default_lang(countries.get(business))
        folder = (root / folders.get(business, safe_name(business))).resolve()
        if folder.parent != root:  # safe_name makes this impossible; refuse rather than trust
            raise ExportError(f"refusing to write outside {root}: {folder}")
        folder.mkdir(parents=True, exist_ok=True)
        texts = _texts(segment_table, language)
        business_sizes = (
            sizes[sizes.business_id == business]
            .merge(texts, on="segment")
            .sort_values("sort_order")[SIZES_COLUMNS]
        )
        business_members = members[members.business_id == business].merge(
            texts, on="segment", how="left"
        )
        business_members = business_members[
            [c for c in MEMBERS_COLUMNS if c in business_members.columns]
        ]
        files = _write(folder, fmt, language, business_sizes, business_members)
        exported.append(
            ExportedBusiness(
                business, known.get(business, business), language, len(business_members),
                folder, files,
            )
        )  # fmt: skip
    return exported


def _query(
    client: Client, sql: str, parameters: dict[str, object], columns: list[str]
) -> pd.DataFrame:
    """query_df, but zero rows keep their columns (the driver returns none then)."""
    frame = client.query_df(sql, parameters=parameters)
    return frame if len(frame.columns) else pd.DataFrame(columns=columns)


def _texts(segments: pd.DataFrame, lang: Lang) -> pd.DataFrame:
    """segment → sort order, label, description and action in `lang`."""
    suffix = "_ru" if lang is Lang.ru else ""
    return pd.DataFrame(
        {
            "segment": segments.segment,
            "sort_order": segments.sort_order,
            "segment_label": segments[f"segment_label{suffix}"],
            "description": segments[f"description{suffix}"],
            "recommended_action": segments[f"recommended_action{suffix}"],
        }
    )


def _for_people(frame: pd.DataFrame, lang: Lang, *, percent_numbers: bool) -> pd.DataFrame:
    """The frame as CSV/XLSX show it: phones formatted, text neutralised, yes/no,
    percentages (as percent numbers for CSV, fractions for XLSX's % format), localized
    headers."""
    out = frame.copy()
    for column in out.columns:
        if column == "phone":
            out[column] = out[column].map(display_phone)
        elif column == "contactable":
            yes, no = YES_NO[lang]
            out[column] = out[column].map(lambda v, yes=yes, no=no: yes if bool(v) else no)
        elif column in PERCENT_COLUMNS:
            values = pd.to_numeric(out[column], errors="coerce")
            out[column] = (values * 100).round(1) if percent_numbers else values
        elif column in MONEY_COLUMNS:
            out[column] = pd.to_numeric(out[column], errors="coerce").astype(float)
        elif out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(neutralise)
    headers = HEADERS[lang]
    return out.rename(
        columns={
            c: f"{headers[c]}, %" if percent_numbers and c in PERCENT_COLUMNS else headers[c]
            for c in out.columns
        }
    )


def _write(
    folder: Path, fmt: ExportFormat, lang: Lang, sizes: pd.DataFrame, members: pd.DataFrame
) -> tuple[Path, ...]:
    if fmt is ExportFormat.xlsx:
        path = folder / "segments.xlsx"
        _write_xlsx(
            path,
            lang,
            [
                (SHEETS[lang][0], sizes, _for_people(sizes, lang, percent_numbers=False)),
                (SHEETS[lang][1], members, _for_people(members, lang, percent_numbers=False)),
            ],
        )
        return (path,)
    paths = []
    for name, frame in (("segment_sizes", sizes), ("members", members)):
        path = folder / f"{name}.{fmt.value}"
        if fmt is ExportFormat.csv:
            _for_people(frame, lang, percent_numbers=True).to_csv(
                path, index=False, encoding="utf-8-sig"
            )
        else:
            frame.reset_index(drop=True).to_parquet(path, index=False)
        paths.append(path)
    return tuple(paths)


def _write_xlsx(
    path: Path, lang: Lang, sheets: list[tuple[str, pd.DataFrame, pd.DataFrame]]
) -> None:
    """Sheets with a frozen, filterable header row, fitted widths and number formats;
    every text cell an explicit string cell (never a formula), phones as text ('@')."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    workbook.remove(workbook.active)
    for title, keyed, shown in sheets:
        sheet = workbook.create_sheet(title)
        sheet.append(list(shown.columns))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in shown.itertuples(index=False):
            sheet.append([None if _missing(v) else _plain(v) for v in row])
        for index, key in enumerate(keyed.columns, start=1):
            letter = get_column_letter(index)
            number_format = (
                "0.0%" if key in PERCENT_COLUMNS
                else "#,##0.00" if key in MONEY_COLUMNS
                else "@" if key == "phone"
                else None
            )  # fmt: skip
            width = len(str(shown.columns[index - 1]))
            for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                if isinstance(cell.value, str):
                    cell.data_type = "s"  # openpyxl would make "=…" a formula
                if number_format:
                    cell.number_format = number_format
                width = max(width, len(_shown_text(cell.value, key)))
            sheet.column_dimensions[letter].width = min(width + 2, 60)
        sheet.freeze_panes = "A2"
        last = get_column_letter(max(len(shown.columns), 1))
        sheet.auto_filter.ref = f"A1:{last}{max(sheet.max_row, 1)}"
    workbook.properties.language = lang.value
    workbook.save(path)


def _shown_text(value: object, key: str) -> str:
    if value is None:
        return ""
    if key in PERCENT_COLUMNS and isinstance(value, float):
        return f"{value:.1%}"
    if key in MONEY_COLUMNS and isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _plain(value: object) -> object:
    """numpy scalars as Python ones (openpyxl writes only those)."""
    return value.item() if hasattr(value, "item") else value
