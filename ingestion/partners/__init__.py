"""Partner ecosystem ingestion: feed adapters (one per partner format), the partner
registry (`partners.yaml`), and the loaders of partner events and offers.

Public entry points:
- `load_partner_feeds(client, partners_dir, registry=None) -> (list[LoadResult], list[FileError])`
- `load_offers(client, offers_file) -> LoadResult`
- `load_registry(path=None) -> dict[str, PartnerConfig]`
"""

from ingestion.partners.adapters import (
    ADAPTERS,
    Adapter,
    CanonicalJsonLines,
    DelimitedExport,
    NestedJsonBatch,
    ParsedFeed,
    register_adapter,
)
from ingestion.partners.load import FileError, build_events, load_partner_feeds, load_partner_file
from ingestion.partners.offers import build_offers, load_offers
from ingestion.partners.parsing import FeedFormatError
from ingestion.partners.registry import (
    DEFAULT_REGISTRY_PATH,
    PartnerConfig,
    RegistryError,
    load_registry,
    parse_registry,
)
from ingestion.partners.schema import (
    EVENT_TYPES,
    MessageSend,
    PartnerEvent,
    PartnerOffer,
)

__all__ = [
    "ADAPTERS",
    "DEFAULT_REGISTRY_PATH",
    "EVENT_TYPES",
    "Adapter",
    "CanonicalJsonLines",
    "DelimitedExport",
    "FeedFormatError",
    "FileError",
    "MessageSend",
    "NestedJsonBatch",
    "ParsedFeed",
    "PartnerConfig",
    "PartnerEvent",
    "PartnerOffer",
    "RegistryError",
    "build_events",
    "build_offers",
    "load_offers",
    "load_partner_feeds",
    "load_partner_file",
    "load_registry",
    "parse_registry",
    "register_adapter",
]
