"""Loading partner feeds and offers into the raw tables.

Each file is one idempotent batch (`warehouse.load.load_batch`) whose id is
`<partner>/<file name>/<sha256 of the content, 16 hex>`: reloading the same file
does nothing, a changed file is a new batch, and an event re-delivered in another
file collapses on (partner_id, event_id) in `raw.partner_events`
(ReplacingMergeTree; the later load wins).

Per file: the partner's adapter parses it, phones are normalised with the partner's
default region (`ingestion.identity`), the rows are validated by the declarative
suite of `ingestion.quality`, and bad rows go to `raw.quarantine` with the field and
reason while the rest loads. A file that cannot be read at all becomes a `FileError`
(file + problem) and the other files still load.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from clickhouse_connect.driver.client import Client

from ingestion import identity
from ingestion.partners.adapters import Adapter
from ingestion.partners.parsing import FeedFormatError
from ingestion.partners.registry import PartnerConfig, RegistryError, load_registry
from ingestion.partners.schema import PARTNER_EVENT_COLUMNS
from ingestion.partners.validation import QUARANTINE_COLUMNS, validate_rows
from warehouse.load import LoadResult, batch_status, load_batch, prepare_raw

EVENTS_TABLE = "partner_events"
SOURCE_KIND = "partner_feed"


@dataclass(frozen=True)
class FileError:
    """A file that could not be loaded at all: which one, whose, and why."""

    path: Path
    error: str
    partner_id: str | None = None

    def __str__(self) -> str:
        who = f"partner {self.partner_id}: " if self.partner_id else ""
        return f"{who}{self.path}: {self.error}"


def content_batch_id(prefix: str, path: Path, content: bytes) -> str:
    """`<prefix>/<file name>/<first 16 hex of SHA-256 of the content>`."""
    return f"{prefix}/{path.name}/{hashlib.sha256(content).hexdigest()[:16]}"


def load_whole_file(
    client: Client,
    table: str,
    path: Path,
    *,
    prefix: str,
    build: Callable[[bytes, str], tuple[pd.DataFrame, pd.DataFrame]],
) -> LoadResult:
    """Load one JSON-lines file as one idempotent batch into `raw.<table>`.

    `build(content, file name)` returns the rows and the quarantined rows; it raises
    FeedFormatError (naming the file) when the file is not readable as a whole. A file
    whose content was already loaded is skipped before it is parsed.
    """
    prepare_raw(client)
    content = path.read_bytes()
    batch_id = content_batch_id(prefix, path, content)
    if batch_status(client, table, batch_id) == "done":
        return LoadResult(table, batch_id, 0, 0, skipped=True)
    rows, quarantine = build(content, path.name)
    return load_batch(
        client, table, rows, batch_id=batch_id,
        source=source_name(path, path.parent.parent), quarantine=quarantine,
    )  # fmt: skip


def source_name(path: Path, root: Path) -> str:
    """The file relative to the source directory, as recorded in `_source`."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def build_events(
    partner: PartnerConfig, adapter: Adapter, content: bytes, name: str, *, id_key: bytes
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One partner file → (canonical event rows, quarantine rows).

    The event frame has exactly `PARTNER_EVENT_COLUMNS`; the quarantine frame the
    columns of `raw.quarantine` without `source_table`/bookkeeping. Raises
    FeedFormatError when the file is unreadable as a whole.
    """
    parsed = adapter.parse(content, name)
    staged = parsed.rows.reset_index(drop=True)
    phones = identity.normalize_phones(staged["phone"], partner.default_region)
    events = pd.DataFrame(
        {
            "event_id": staged["event_id"].astype(object),
            "partner_id": partner.partner_id,
            "event_type": [partner.canonical_event_type(v) for v in staged["event_type"]],
            "phone_e164": phones["phone_e164"].to_numpy(dtype=object),
            "customer_id": identity.customer_id(phones["phone_e164"], id_key).to_numpy(
                dtype=object
            ),
            "amount": staged["amount"].astype(object),
            "currency": staged["currency"].astype(object),
            "occurred_at": staged["occurred_at"],
            "offer_id": staged["offer_id"].astype(object),
            "raw_payload": staged["raw_payload"].astype(object),
        }
    )
    parse_errors = {
        "phone_e164": _phone_errors(staged["phone"], phones["error"]),
        "amount": staged["amount_error"],
        "occurred_at": staged["occurred_at_error"],
    }
    good, bad = validate_rows(
        events,
        "partner_events",
        source=SOURCE_KIND,
        row_ref=staged["row_ref"],
        raw_row=staged["raw_payload"],
        parse_errors=parse_errors,
    )
    rejects = pd.DataFrame(parsed.rejects, columns=["row_ref", "field", "reason", "raw_row"])
    rejects.insert(0, "source_kind", SOURCE_KIND)
    quarantine = pd.concat([q for q in (rejects, bad) if len(q)] or [rejects], ignore_index=True)
    return good[list(PARTNER_EVENT_COLUMNS)].reset_index(drop=True), quarantine[
        list(QUARANTINE_COLUMNS)
    ]


def _phone_errors(raw: pd.Series, errors: pd.Series) -> list[str | None]:
    return [
        None if error is None else f"phone {value!r}: {error}"
        for value, error in zip(raw, errors, strict=True)
    ]


def load_partner_file(
    client: Client,
    partner: PartnerConfig,
    path: Path,
    *,
    root: Path | None = None,
    id_key: bytes,
) -> LoadResult:
    """Load one partner file as one idempotent batch; FeedFormatError when unreadable."""
    content = path.read_bytes()
    batch_id = content_batch_id(partner.partner_id, path, content)
    if batch_status(client, EVENTS_TABLE, batch_id) == "done":
        # Cheaper than parsing again; load_batch would skip it anyway.
        return LoadResult(EVENTS_TABLE, batch_id, 0, 0, skipped=True)
    events, quarantine = build_events(
        partner, partner.make_adapter(), content, path.name, id_key=id_key
    )
    return load_batch(
        client,
        EVENTS_TABLE,
        events,
        batch_id=batch_id,
        source=source_name(path, root or path.parent),
        quarantine=quarantine,
    )


def load_partner_feeds(
    client: Client,
    partners_dir: Path,
    registry: Mapping[str, PartnerConfig] | Path | None = None,
    *,
    id_key: bytes,
) -> tuple[list[LoadResult], list[FileError]]:
    """Load every partner folder under `partners_dir` (`<src>/partners`).

    Each sub-folder is a partner id looked up in `registry` (a mapping, a YAML path,
    or None for the shipped `partners.yaml`); its files matching the adapter's glob
    load one batch each, in name order. Returns the batch results and the files
    (or unregistered partner folders) that could not be loaded, with the reason.
    """
    partners = _registry(registry)
    prepare_raw(client)
    results: list[LoadResult] = []
    errors: list[FileError] = []
    if not partners_dir.is_dir():
        return results, [FileError(partners_dir, "partner feeds folder does not exist")]
    root = partners_dir.parent
    for folder in sorted(p for p in partners_dir.iterdir() if p.is_dir()):
        partner = partners.get(folder.name)
        if partner is None:
            errors.append(
                FileError(
                    folder,
                    f"partner {folder.name!r} is not in the partner registry; add an entry "
                    "for it (adapter and options) to partners.yaml",
                )
            )
            continue
        files = sorted(p for p in folder.glob(partner.make_adapter().files) if p.is_file())
        for path in files:
            try:
                results.append(load_partner_file(client, partner, path, root=root, id_key=id_key))
            except FeedFormatError as ex:
                errors.append(FileError(path, str(ex), partner.partner_id))
            except OSError as ex:
                errors.append(FileError(path, f"cannot read: {ex}", partner.partner_id))
    return results, errors


def _registry(registry: Mapping[str, PartnerConfig] | Path | None) -> Mapping[str, PartnerConfig]:
    if registry is None or isinstance(registry, Path):
        return load_registry(registry)
    if not all(isinstance(v, PartnerConfig) for v in registry.values()):
        raise RegistryError("registry mapping values must be PartnerConfig")
    return registry
