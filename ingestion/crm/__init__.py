"""CRM connectors: REST API (incremental, cursor-based), file drops.

Public entry points (no Dagster here; `orchestration` wires them):
- `sync_crm_api(client, CrmApiConfig(...), ...) -> list[LoadResult]`
- `load_crm_exports(client, exports_dir, ...) -> (list[LoadResult], list[FileError])`
- `ingest_crm_exports(client, exports_dir, field_maps=FieldMaps(...)) -> ExportsReport`
  (per file: loaded, already loaded, skipped with the patterns, failed with a hint)
"""

from ingestion.config import CrmApiConfig
from ingestion.crm.api import CrmApiClient, CrmApiError, sync_crm_api
from ingestion.crm.cursors import CursorStore
from ingestion.crm.files import (
    ExportsReport,
    FieldMaps,
    FileError,
    FileOutcome,
    ingest_crm_exports,
    load_crm_exports,
)
from ingestion.crm.mapping import (
    ENTITIES,
    FieldMap,
    FieldMapError,
    MappingError,
    load_field_map,
)

__all__ = [
    "ENTITIES",
    "CrmApiClient",
    "CrmApiConfig",
    "CrmApiError",
    "CursorStore",
    "ExportsReport",
    "FieldMap",
    "FieldMapError",
    "FieldMaps",
    "FileError",
    "FileOutcome",
    "MappingError",
    "ingest_crm_exports",
    "load_crm_exports",
    "load_field_map",
    "sync_crm_api",
]
