"""`raw/quarantine`: the rows every connector rejected, as one asset after the loads.

Each ingestion asset writes its rejects into `raw.quarantine` as it loads; this asset
runs after them, so the dbt source `ingestion.quarantine` (and the data-loss ledger built
on it) has an upstream in the asset graph, and reports what the table holds per raw
table: rows rejected whole, and rows kept with a field dropped.
"""

from typing import Any

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from orchestration.defs.ingestion.assets import GROUP, RAW_KEYS
from orchestration.defs.ingestion.checks import raw_key
from orchestration.resources import WarehouseResource


@asset(
    key=raw_key("quarantine"),
    deps=RAW_KEYS,
    group_name=GROUP,
    kinds={"clickhouse"},
    description="Rows rejected at load by every connector (raw.quarantine), per raw table.",
)
def quarantine(context: AssetExecutionContext, warehouse: WarehouseResource) -> Any:
    with warehouse.get_client() as client:
        rows = client.query(
            # A source row quarantined for several fields is one row; whole if any
            # field cost it the row (the reason of a field-level quarantine says so).
            "SELECT source_table, countIf(whole), countIf(NOT whole) FROM ("
            "  SELECT source_table, source_kind, _source, row_ref,"
            "    countIf(NOT endsWith(reason, 'value dropped, row kept')) > 0 AS whole"
            "  FROM raw.quarantine FINAL GROUP BY source_table, source_kind, _source, row_ref"
            ") GROUP BY source_table ORDER BY source_table"
        ).result_rows
    table = "\n".join(
        ["| raw table | rows rejected | rows kept, field dropped |", "|---|---:|---:|"]
        + [f"| {t} | {whole:,} | {kept:,} |" for t, whole, kept in rows]
    )
    return MaterializeResult(
        metadata={
            "rows_rejected": sum(r[1] for r in rows),
            "rows_kept_field_dropped": sum(r[2] for r in rows),
            "per_table": MetadataValue.md(table if rows else "(none)"),
        }
    )
