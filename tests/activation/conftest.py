"""Fixtures for activation runs: the delivery tests' stand-ins and outbox, the planner
tests' row builders, and a temporary warehouse with every table a run reads or writes.

The input tables come from their owners' descriptions: raw tables from warehouse.schema,
the marts of the dbt exposures `activation_planner` and `activation_delivery` from their
dbt contracts, ml.revisit_scores from ml.contract, the activation log from activation_log.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import warehouse
from activation.activation_log import ensure_log_tables
from ml.contract import ensure_scores_table
from revisit.settings import Settings
from tests.activation.delivery.conftest import (  # noqa: F401 - fixtures used by name
    _cluster,
    jsonl_dir,
    outbox,
    standins,
)
from tests.activation.planner.conftest import Fixtures
from warehouse import contracts
from warehouse.load import prepare_raw


@pytest.fixture
def client(settings: Settings) -> Iterator[warehouse.Client]:
    """The settings' (temporary) warehouse with empty input tables; closed afterwards."""
    with warehouse.connect(settings.warehouse_dsn) as client:
        prepare_raw(client)
        marts = [
            *contracts.exposure_tables("activation_planner"),
            *contracts.exposure_tables("activation_delivery"),
        ]
        contracts.create_tables(client, list(dict.fromkeys(marts)))
        ensure_scores_table(client)
        ensure_log_tables(client)
        yield client


@pytest.fixture
def fx(client: warehouse.Client) -> Fixtures:
    return Fixtures(client)
