"""The warehouse table ML owns: `ml.revisit_scores`.

Output: `ml.revisit_scores` — one row per (business_id, customer_id) per scoring run,
history kept; a run is (model_version, scored_at) and a rerun replaces its rows. Its DDL
lives here and only here (the planner's tests and benchmark take it from here too).

Inputs are dbt marts, not ML's: the dbt exposure `revisit_model`
(dbt_project/models/exposures.yml) lists the ones the feature SQL reads, and each declares
its columns and types in a dbt contract. Standalone warehouses (`revisit ml evaluate`'s
temporary one, the benchmark, the tests) create them from those contracts with
`create_input_tables`, never from a copy of their DDL.
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from warehouse import contracts

# The dbt exposure whose `depends_on` lists the marts the feature SQL reads.
EXPOSURE = "revisit_model"

SCORES_TABLE = "ml.revisit_scores"

SCORES_DDL = f"""
CREATE TABLE IF NOT EXISTS {SCORES_TABLE} (
    business_id String,
    customer_id String,
    scored_at DateTime64(3, 'UTC'),
    model_version String,
    horizon_days UInt16,
    p_revisit Float64,
    decile UInt8,
    reason_codes Array(String),
    _inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree
ORDER BY (business_id, customer_id, scored_at, model_version)
"""


def input_tables() -> list[str]:
    """The marts the feature SQL reads (`<database>.<table>`), from the dbt exposure."""
    return contracts.exposure_tables(EXPOSURE)


def create_input_tables(client: Client) -> None:
    """Create the ML input tables as their dbt contracts declare them (standalone
    warehouses only; dbt builds them in production)."""
    contracts.create_tables(client, input_tables())


def ensure_scores_table(client: Client) -> None:
    """Create `ml.revisit_scores` when missing."""
    client.command("CREATE DATABASE IF NOT EXISTS ml")
    client.command(SCORES_DDL)
