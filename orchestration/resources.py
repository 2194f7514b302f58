"""Dagster resources: the warehouse hands out short-lived clients.

In embedded mode the engine locks its directory per process and a dbt step runs
in a subprocess, so no resource may keep the warehouse open between uses: the
in-process executor initialises resources once per run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from clickhouse_connect.driver.client import Client
from dagster import ConfigurableResource

import warehouse
from warehouse.load import prepare_raw


class WarehouseResource(ConfigurableResource):
    """The warehouse named by a DSN (`chdb:///dir` or `http(s)://…`)."""

    dsn: str

    @contextmanager
    def get_client(self) -> Iterator[Client]:
        """A client for one use, closed when the block ends; raw tables exist."""
        with warehouse.connect(self.dsn) as client:
            prepare_raw(client)
            yield client

    @property
    def display(self) -> str:
        return warehouse.parse_dsn(self.dsn).display
