"""The report's content, independent of the file format: sections of a reading, a chart
and tables whose columns have a kind (int, pct, money, num, metric, text); HTML and PDF format
the numbers per locale (`fmt`), XLSX writes them as numbers with a number format."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from babel import Locale
from babel.numbers import format_currency, format_decimal, format_percent

from warehouse.report.vega import Chart

# Parsed once: babel parses a locale given by name on every call, a third of a table's
# formatting time.
LOCALES = {"ru": Locale.parse("ru_RU"), "en": Locale.parse("en_US")}


@dataclass
class Table:
    caption: str
    columns: list[str]
    kinds: list[str]
    rows: list[list[object]]


@dataclass
class Section:
    id: str
    title: str
    reading: str
    chart: Chart | None = None
    chart_alt: str = ""
    tables: list[Table] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.chart is None and not self.tables


@dataclass
class Report:
    business_id: str
    business_name: str
    lang: str
    period: str
    currency: str
    title: str
    subtitle: str
    sections: list[Section]


def fmt(value: object, kind: str, lang: str, currency: str = "") -> str:
    """A number as the locale writes it: ru `1 234,5 ₽`, `12,3 %`; en `₽1,234.50`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    locale = LOCALES[lang]
    if kind == "int":
        return format_decimal(int(value), locale=locale)
    if kind == "pct":
        return format_percent(float(value), "#,##0.0\u00a0%" if lang == "ru" else "#,##0.0%",
                              locale=locale)  # fmt: skip
    if kind == "money":
        if currency:
            return format_currency(float(value), currency, "#,##0.#\u00a0¤" if lang == "ru" else
                                   "¤#,##0.#", locale=locale, currency_digits=False)  # fmt: skip
        return format_decimal(round(float(value)), locale=locale)
    if kind == "metric":
        return format_decimal(float(value), "0.000", locale=locale)
    if kind == "num":
        return format_decimal(float(value), "#,##0.##", locale=locale)
    return str(value)
