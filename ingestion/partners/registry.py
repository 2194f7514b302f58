"""The partner registry: which adapter reads each partner's folder, and with what options.

`partners.yaml` (next to this module by default) maps a partner id — the name of its
folder under `<src>/partners/` — to an entry:

```yaml
partners:
  <partner_id>:
    adapter: canonical_jsonl | delimited | nested_json | package.module:Class
    files: "export_*.csv"        # optional glob, default per adapter
    timezone: Europe/Moscow      # IANA; local dates in the feed are in this zone
    currency: RUB                # used when a row carries no currency
    default_region: RU           # ISO-3166 region for phones typed without +country
    cashback_rate: "0.05"        # the partner's cashback share (for the ledger)
    event_types: {Начисление: accrual, ...}   # partner's words → canonical types
    options: {...}               # adapter-specific, see each adapter's Options
```

A new partner in a known format is a new entry here and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ingestion.partners.adapters import Adapter, resolve_adapter
from ingestion.partners.schema import EVENT_TYPES

DEFAULT_REGISTRY_PATH = Path(__file__).with_name("partners.yaml")


class RegistryError(ValueError):
    """The registry file is missing, not YAML, or has an invalid entry."""


class PartnerConfig(BaseModel):
    """One partner's registry entry (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partner_id: str = Field(min_length=1)
    adapter: str
    files: str | None = None
    timezone: str = "UTC"
    currency: str = Field(default="RUB", pattern=r"^[A-Z]{3}$")
    default_region: str = "RU"
    cashback_rate: Decimal | None = Field(default=None, ge=0, le=1)
    event_types: dict[str, str] = {}
    options: dict[str, Any] = {}

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as ex:
            raise ValueError(f"unknown IANA time zone {value!r}") from ex
        return value

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {value!r}")
        return value.upper()

    @field_validator("event_types")
    @classmethod
    def _canonical_targets(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted({t for t in value.values() if t not in EVENT_TYPES})
        if bad:
            raise ValueError(f"event types {bad} are not among {list(EVENT_TYPES)}")
        return value

    def make_adapter(self) -> Adapter:
        """The adapter instance for this partner (validates `options`)."""
        return resolve_adapter(self.adapter)(self)

    def canonical_event_type(self, value: str | None) -> str | None:
        """The canonical type of the partner's word: the registry map first (case and
        surrounding spaces ignored), then the canonical names themselves. An unknown
        word is returned lowercased, so validation quarantines it under its own name."""
        if value is None:
            return None
        key = value.strip().casefold()
        return self._event_type_map.get(key, key)

    @cached_property
    def _event_type_map(self) -> dict[str, str]:
        return {k.strip().casefold(): v for k, v in self.event_types.items()}


def parse_registry(
    data: Mapping[str, Any], *, origin: str = "registry"
) -> dict[str, PartnerConfig]:
    """`{"partners": {id: entry}}` → {partner_id: PartnerConfig}, each adapter checked."""
    partners = data.get("partners") if isinstance(data, Mapping) else None
    if not isinstance(partners, Mapping):
        raise RegistryError(f"{origin}: expected a top-level 'partners:' mapping")
    out: dict[str, PartnerConfig] = {}
    for partner_id, entry in partners.items():
        try:
            config = PartnerConfig.model_validate({"partner_id": str(partner_id), **(entry or {})})
            config.make_adapter()
        except (ValidationError, KeyError, TypeError) as ex:
            raise RegistryError(f"{origin}: partner {partner_id!r}: {ex}") from ex
        out[config.partner_id] = config
    return out


def load_registry(path: Path | None = None) -> dict[str, PartnerConfig]:
    """The partner registry from YAML (default: `partners.yaml` next to this module)."""
    path = path or DEFAULT_REGISTRY_PATH
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as ex:
        raise RegistryError(f"cannot read the partner registry {path}: {ex}") from ex
    except yaml.YAMLError as ex:
        raise RegistryError(f"{path}: not valid YAML: {ex}") from ex
    return parse_registry(data, origin=str(path))
