"""Connection handling: dbt-clickhouse's HTTP client wrapper, pointed at chDB."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import clickhouse_connect
from dbt.adapters.clickhouse.connections import ClickHouseConnectionManager
from dbt.adapters.clickhouse.credentials import ClickHouseCredentials
from dbt.adapters.clickhouse.dbclient import ChRetryableException
from dbt.adapters.clickhouse.httpclient import ChHttpClient
from dbt.adapters.clickhouse.logger import logger
from dbt.adapters.contracts.connection import Connection
from dbt_common.exceptions import DbtRuntimeError

# Settings that only make sense for a server session (HTTP session ids,
# replication quorum); the embedded engine rejects or ignores them.
_SERVER_ONLY_SETTINGS = ("session_id", "insert_quorum", "insert_distributed_sync")


@dataclass
class ChdbCredentials(ClickHouseCredentials):
    """Credentials of the embedded engine: a data directory instead of host and port."""

    path: str = ""

    @property
    def type(self) -> str:
        return "chdb"

    @property
    def unique_field(self) -> str:
        return self.path

    def _connection_keys(self) -> tuple[str, ...]:
        return ("path", "schema")


class ChdbClient(ChHttpClient):
    """dbt-clickhouse's client wrapper whose clickhouse-connect client is chDB's."""

    def _create_client(self, credentials: ChdbCredentials) -> Any:
        if not credentials.path:
            raise DbtRuntimeError("The chdb profile needs `path`: the warehouse data directory.")
        settings = {k: v for k, v in self._conn_settings.items() if k not in _SERVER_ONLY_SETTINGS}
        try:
            return clickhouse_connect.get_client(
                interface="chdb", path=credentials.path, settings=settings
            )
        except Exception as ex:  # the engine reports a locked directory as a generic error
            message = str(ex)
            if "Cannot lock file" in message or "already initialized" in message:
                raise DbtRuntimeError(
                    f"The warehouse directory {credentials.path} is in use by another "
                    "process; stop it (or close its clients) and run dbt again."
                ) from ex
            raise ChRetryableException(message) from ex

    def close(self) -> None:
        self._client.close()


class ChdbConnectionManager(ClickHouseConnectionManager):
    TYPE = "chdb"

    @classmethod
    def open(cls, connection: Connection) -> Connection:
        if connection.state == "open":
            return connection
        credentials = cls.get_credentials(connection.credentials)
        return cls.retry_connection(
            connection,
            connect=lambda: ChdbClient(credentials),
            logger=logger,
            retry_limit=credentials.retries,
            retryable_exceptions=[ChRetryableException],
        )
