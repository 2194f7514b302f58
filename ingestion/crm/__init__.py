"""CRM connectors: REST API (incremental, cursor-based), file drops.

Public entry points (no Dagster here; `orchestration` wires them):
- `sync_crm_api(client, CrmApiConfig(...), ...) -> list[LoadResult]`
- `load_crm_exports(client, exports_dir, ...) -> (list[LoadResult], list[FileError])`
"""

from ingestion.config import CrmApiConfig
from ingestion.crm.api import CrmApiClient, sync_crm_api
from ingestion.crm.cursors import CursorStore
from ingestion.crm.files import FileError, load_crm_exports
from ingestion.crm.mapping import ENTITIES, FieldMap, MappingError, load_field_map

__all__ = [
    "ENTITIES",
    "CrmApiClient",
    "CrmApiConfig",
    "CursorStore",
    "FieldMap",
    "FileError",
    "MappingError",
    "load_crm_exports",
    "load_field_map",
    "sync_crm_api",
]
