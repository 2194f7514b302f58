"""Fixtures: a small source directory following SOURCES.md, and a warehouse per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import warehouse
from revisit.settings import Settings
from tests.ingestion.crm.crmdata import (
    APPOINTMENTS,
    BUSINESSES,
    CUSTOMERS,
    LOCATIONS,
    SERVICES,
    write_jsonl,
)


@pytest.fixture
def src_dir(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    api = src / "crm" / "api"
    write_jsonl(api / "businesses.jsonl", BUSINESSES)
    write_jsonl(api / "locations.jsonl", LOCATIONS)
    write_jsonl(api / "services.jsonl", SERVICES)
    write_jsonl(api / "customers.jsonl", CUSTOMERS)
    write_jsonl(api / "appointments.jsonl", APPOINTMENTS)
    return src


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def client(settings: Settings) -> Iterator:
    with warehouse.connect(settings.warehouse_dsn) as c:
        yield c
