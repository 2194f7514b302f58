"""Warehouse access: DSN → ClickHouse client (embedded chDB or a server), DDL, bulk loads.

Nothing here knows about Dagster; `orchestration` wires it.
"""

from clickhouse_connect.driver.client import Client

from warehouse.client import (
    WarehouseError,
    WarehouseLockedError,
    WarehouseTarget,
    connect,
    lock_holder,
    parse_dsn,
)

__all__ = [
    "Client",
    "WarehouseError",
    "WarehouseLockedError",
    "WarehouseTarget",
    "connect",
    "lock_holder",
    "parse_dsn",
]
