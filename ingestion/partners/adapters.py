"""Partner feed adapters: one per file format, each turning a partner file into rows of
the canonical event fields.

An adapter reads the bytes of one file and returns a `ParsedFeed`:
- `rows`: one row per source record with the columns of `STAGED_COLUMNS` —
  `event_id`, `event_type` (the partner's own word, mapped later by the registry),
  `phone` (as the partner wrote it), `amount` (Decimal or None) with `amount_error`,
  `currency`, `occurred_at` (UTC, NaT when unparseable) with `occurred_at_error`,
  `offer_id`, `raw_payload` (the source record as JSON text) and `row_ref`
  (`line N` / `item N`, naming the record in the file);
- `rejects`: records that could not be read at all (a line that is not JSON, a CSV
  line with the wrong number of fields) as quarantine rows.
A file that cannot be read at all (wrong encoding, not JSON, missing columns) raises
`FeedFormatError` with a message naming the problem.

Adding a format: subclass `Adapter`, decorate it with `@register_adapter`, and name it
in `partners.yaml` (or name it there as `package.module:ClassName` without registering).
"""

from __future__ import annotations

import csv
import io
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from ingestion.partners.parsing import (
    FeedFormatError,
    decode_text,
    dig,
    is_missing,
    parse_local_timestamps,
    parse_minor_units,
    parse_money,
    parse_utc_timestamps,
    read_json_lines,
)

if TYPE_CHECKING:
    from ingestion.partners.registry import PartnerConfig

STAGED_COLUMNS: tuple[str, ...] = (
    "row_ref", "event_id", "event_type", "phone", "amount", "amount_error", "currency",
    "occurred_at", "occurred_at_error", "offer_id", "raw_payload",
)  # fmt: skip
# The canonical fields an adapter maps from source fields.
SOURCE_FIELDS: tuple[str, ...] = (
    "event_id", "event_type", "phone", "amount", "currency", "occurred_at", "offer_id",
)  # fmt: skip
REQUIRED_FIELDS: tuple[str, ...] = ("event_id", "event_type", "phone", "amount", "occurred_at")


@dataclass
class ParsedFeed:
    rows: pd.DataFrame
    rejects: list[dict[str, str]] = field(default_factory=list)


def reject(row_ref: str, field_name: str, reason: str, raw_row: str) -> dict[str, str]:
    """A quarantine row (columns of `raw.quarantine` minus bookkeeping and source_kind)."""
    return {"row_ref": row_ref, "field": field_name, "reason": reason, "raw_row": raw_row}


class StrictOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Adapter(ABC):
    """Base of every adapter. `Options` validates the adapter-specific `options:` block
    of the partner's registry entry; `default_files` is the glob of the partner's files
    inside its folder (overridable per partner with `files:`)."""

    name: ClassVar[str]
    default_files: ClassVar[str]
    Options: ClassVar[type[StrictOptions]] = StrictOptions

    def __init__(self, partner: PartnerConfig) -> None:
        self.partner = partner
        self.options = self.Options.model_validate(partner.options)

    @property
    def files(self) -> str:
        return self.partner.files or self.default_files

    @abstractmethod
    def parse(self, content: bytes, name: str) -> ParsedFeed:
        """Rows of one file; raise FeedFormatError when the file is unreadable as a whole."""


ADAPTERS: dict[str, type[Adapter]] = {}


def register_adapter(cls: type[Adapter]) -> type[Adapter]:
    """Class decorator: make the adapter available to `partners.yaml` by its `name`."""
    ADAPTERS[cls.name] = cls
    return cls


def resolve_adapter(name: str) -> type[Adapter]:
    """A registered adapter name, or `package.module:ClassName` for an adapter kept
    outside this package."""
    if name in ADAPTERS:
        return ADAPTERS[name]
    if ":" in name:
        import importlib

        module_name, _, attr = name.partition(":")
        cls = getattr(importlib.import_module(module_name), attr, None)
        if isinstance(cls, type) and issubclass(cls, Adapter):
            return cls
    known = ", ".join(sorted(ADAPTERS))
    raise KeyError(f"unknown partner adapter {name!r} (known: {known}, or module:Class)")


def _payload(record: object) -> str:
    return json.dumps(record, ensure_ascii=False, default=str, sort_keys=True)


def _text(value: object) -> str | None:
    if is_missing(value):
        return None
    return str(value).strip()


def _staged(records: list[dict[str, Any]]) -> pd.DataFrame:
    # object columns keep None as None (pandas 3 would infer `str` with NaN).
    frame = pd.DataFrame(
        {c: pd.Series([r[c] for r in records], dtype=object) for c in STAGED_COLUMNS}
    )
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True).astype(
        "datetime64[ms, UTC]"
    )
    return frame


# --- JSON formats -----------------------------------------------------------------


class JsonOptions(StrictOptions):
    """`fields`: canonical field → source key, dotted for nesting (`customer.msisdn`).
    `amount_unit`: `major` (decimal string, `12.50`) or `minor` (integer, `1250`);
    `minor_exponent` overrides the currency's ISO 4217 exponent for minor units."""

    fields: dict[str, str] = {}
    amount_unit: Literal["major", "minor"] = "major"
    minor_exponent: int | None = None


class JsonRecordsAdapter(Adapter):
    """Shared logic of the JSON adapters: records (dicts) → staged rows."""

    Options: ClassVar[type[StrictOptions]] = JsonOptions
    default_fields: ClassVar[dict[str, str]] = {f: f for f in SOURCE_FIELDS}

    def field_map(self) -> dict[str, str]:
        assert isinstance(self.options, JsonOptions)
        return {**self.default_fields, **self.options.fields}

    def stage(self, records: list[tuple[str, dict[str, Any]]]) -> pd.DataFrame:
        assert isinstance(self.options, JsonOptions)
        fields = self.field_map()
        stamps, stamp_errors = parse_utc_timestamps(
            dig(record, fields["occurred_at"]) for _, record in records
        )
        rows = []
        for (row_ref, record), stamp, stamp_error in zip(
            records, stamps, stamp_errors, strict=True
        ):
            currency = _text(dig(record, fields["currency"])) or self.partner.currency
            raw_amount = dig(record, fields["amount"])
            if self.options.amount_unit == "minor":
                amount, amount_error = parse_minor_units(
                    raw_amount, currency, exponent=self.options.minor_exponent
                )
            else:
                amount, amount_error = parse_money(raw_amount)
            rows.append(
                {
                    "row_ref": row_ref,
                    "event_id": _text(dig(record, fields["event_id"])),
                    "event_type": _text(dig(record, fields["event_type"])),
                    "phone": _text(dig(record, fields["phone"])),
                    "amount": amount,
                    "amount_error": amount_error,
                    "currency": currency.upper(),
                    "occurred_at": stamp,
                    "occurred_at_error": stamp_error,
                    "offer_id": _text(dig(record, fields["offer_id"])),
                    "raw_payload": _payload(record),
                }
            )
        return _staged(rows)


@register_adapter
class CanonicalJsonLines(JsonRecordsAdapter):
    """`events_*.jsonl`: one canonical event object per line. Timestamps ISO-8601 (naive
    ones are UTC) or epoch seconds; amounts decimal strings. A line that is not a JSON
    object is quarantined; a file where no line is one is an error."""

    name = "canonical_jsonl"
    default_files = "events_*.jsonl"

    def parse(self, content: bytes, name: str) -> ParsedFeed:
        records, rejects = read_json_lines(content, name)
        return ParsedFeed(self.stage(records), rejects)


class NestedJsonOptions(JsonOptions):
    """`items`: dotted path of the list of events inside the document."""

    items: str = "items"
    amount_unit: Literal["major", "minor"] = "minor"


@register_adapter
class NestedJsonBatch(JsonRecordsAdapter):
    """`batch_*.json`: one JSON document `{"batch": …, "items": [{"id", "kind",
    "customer": {"msisdn"}, "money": {"amount_minor", "currency"}, "ts",
    "promo": {"id"}}]}`, amounts in minor units of the item's currency."""

    name = "nested_json"
    default_files = "batch_*.json"
    Options = NestedJsonOptions
    default_fields: ClassVar[dict[str, str]] = {
        "event_id": "id",
        "event_type": "kind",
        "phone": "customer.msisdn",
        "amount": "money.amount_minor",
        "currency": "money.currency",
        "occurred_at": "ts",
        "offer_id": "promo.id",
    }

    def parse(self, content: bytes, name: str) -> ParsedFeed:
        assert isinstance(self.options, NestedJsonOptions)
        text = decode_text(content, name)
        try:
            document = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as ex:
            raise FeedFormatError(
                f"{name}: not valid JSON (line {ex.lineno}, column {ex.colno}: {ex.msg})"
            ) from ex
        items = dig(document, self.options.items)
        if not isinstance(items, list):
            raise FeedFormatError(f"{name}: no list of events at {self.options.items!r}")
        records: list[tuple[str, dict[str, Any]]] = []
        rejects: list[dict[str, str]] = []
        for number, item in enumerate(items, start=1):
            if isinstance(item, dict):
                records.append((f"item {number}", item))
            else:
                rejects.append(reject(f"item {number}", "*", "not a JSON object", _payload(item)))
        return ParsedFeed(self.stage(records), rejects)


# --- delimited text -----------------------------------------------------------------


class DelimitedOptions(StrictOptions):
    """`columns`: canonical field → header of the partner's file. `separator`, `decimal`
    (the decimal separator of amounts), `encoding` (`utf-8-sig` also reads a BOM),
    `date_formats` (strptime, tried in order; wall-clock time in the partner's
    `timezone`)."""

    columns: dict[str, str] = {
        "event_id": "Номер операции",
        "event_type": "Тип",
        "phone": "Телефон",
        "amount": "Сумма",
        "currency": "Валюта",
        "occurred_at": "Дата",
        "offer_id": "Акция",
    }
    separator: str = ";"
    decimal: str = ","
    encoding: str = "utf-8-sig"
    date_formats: list[str] = ["%d.%m.%Y %H:%M", "%d.%m.%Y"]


@register_adapter
class DelimitedExport(Adapter):
    """`export_*.csv`: a spreadsheet-style export with the partner's own headers,
    separator, decimal separator and local dates (defaults: the Russian export of
    SOURCES.md — `;`, decimal comma, `DD.MM.YYYY[ HH:MM]`, UTF-8 with BOM)."""

    name = "delimited"
    default_files = "export_*.csv"
    Options = DelimitedOptions

    def parse(self, content: bytes, name: str) -> ParsedFeed:
        options = self.options
        assert isinstance(options, DelimitedOptions)
        text = decode_text(content, name, options.encoding)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=options.separator)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise FeedFormatError(f"{name}: empty file, expected a header line") from None
        except csv.Error as ex:
            raise FeedFormatError(f"{name}: unreadable header ({ex})") from ex
        required = [options.columns[f] for f in REQUIRED_FIELDS if f in options.columns]
        missing = [c for c in required if c not in header]
        if missing or len(required) < len(REQUIRED_FIELDS):
            shown = ", ".join(repr(h) for h in header[:10])
            raise FeedFormatError(
                f"{name}: missing column(s) {', '.join(map(repr, missing)) or '(unmapped)'} "
                f"with separator {options.separator!r}; the header has {shown}"
            )
        position = {f: header.index(c) for f, c in options.columns.items() if c in header}
        records: list[tuple[str, dict[str, str], list[str]]] = []
        rejects: list[dict[str, str]] = []
        try:
            for values in reader:
                row_ref = f"line {reader.line_num}"
                if not any(v.strip() for v in values):
                    continue
                if len(values) != len(header):
                    rejects.append(
                        reject(
                            row_ref,
                            "*",
                            f"{len(values)} fields, the header has {len(header)}",
                            options.separator.join(values),
                        )
                    )
                    continue
                records.append((row_ref, dict(zip(header, values, strict=True)), values))
        except csv.Error as ex:
            raise FeedFormatError(f"{name}: line {reader.line_num}: {ex}") from ex
        return ParsedFeed(self._stage(records, position), rejects)

    def _stage(
        self, records: list[tuple[str, dict[str, str], list[str]]], position: dict[str, int]
    ) -> pd.DataFrame:
        options = self.options
        assert isinstance(options, DelimitedOptions)

        def column(field_name: str) -> Callable[[list[str]], str | None]:
            index = position.get(field_name)
            return lambda values: None if index is None else _text(values[index])

        get = {f: column(f) for f in SOURCE_FIELDS}
        stamps, stamp_errors = parse_local_timestamps(
            [get["occurred_at"](values) for _, _, values in records],
            options.date_formats,
            self.partner.timezone,
        )
        rows = []
        for (row_ref, record, values), stamp, stamp_error in zip(
            records, stamps, stamp_errors, strict=True
        ):
            amount, amount_error = parse_money(get["amount"](values), decimal_sep=options.decimal)
            rows.append(
                {
                    "row_ref": row_ref,
                    "event_id": get["event_id"](values),
                    "event_type": get["event_type"](values),
                    "phone": get["phone"](values),
                    "amount": amount,
                    "amount_error": amount_error,
                    "currency": (get["currency"](values) or self.partner.currency).upper(),
                    "occurred_at": stamp,
                    "occurred_at_error": stamp_error,
                    "offer_id": get["offer_id"](values),
                    "raw_payload": _payload(record),
                }
            )
        return _staged(rows)
