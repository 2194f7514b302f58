"""Shared ML fixtures: one synthetic world in a temporary warehouse, trained once."""

from __future__ import annotations

from pathlib import Path

import pytest

import warehouse
from ml.train import TrainConfig, TrainingRun, train_and_evaluate
from simulation.visit_world import SyntheticWorld, generate_world

EVALUATION_CUTOFF = "2024-12-01"


@pytest.fixture(scope="session")
def world() -> SyntheticWorld:
    return generate_world(n_customers=10_000, seed=3)


@pytest.fixture(scope="session")
def world_dsn(world: SyntheticWorld, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A warehouse holding the world; tests open and close their own clients on it."""
    dsn = f"chdb://{Path(tmp_path_factory.mktemp('ml-world')) / 'warehouse'}"
    with warehouse.connect(dsn) as client:
        world.load(client)
    return dsn


@pytest.fixture(scope="session")
def trained(world_dsn: str) -> TrainingRun:
    # One thread: the shared test machine makes 2-thread OpenMP much slower, not faster.
    with warehouse.connect(world_dsn) as client:
        return train_and_evaluate(client, EVALUATION_CUTOFF, TrainConfig(threads=1))
