"""`ml.revisit_features`: the model's point-in-time features as a table, for inspection.

The same feature SQL the model trains and scores on (`ml.features.FEATURE_SQL`), as of one
cutoff, without the label. It is rebuilt whole on every call (CREATE OR REPLACE), so a
repeated or interrupted run leaves one consistent table.

    summary = build_feature_table(client, date(2026, 11, 1))
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from clickhouse_connect.driver.client import Client

from ml.features import FEATURE_SQL, LABEL

DATABASE = "ml"
FEATURE_TABLE = f"{DATABASE}.revisit_features"
# The label window the feature SQL is parameterised with; the label itself is dropped.
HORIZON_DAYS = 30
KEY_COLUMNS = ("business_id", "customer_id")
# Columns of the table that are not model features: the keys and the cutoff.
NOT_FEATURES = frozenset({*KEY_COLUMNS, "cutoff"})


@dataclass(frozen=True)
class FeatureTableSummary:
    """What `build_feature_table` wrote: rows (customers), feature columns (all but the
    keys and the cutoff), and the first rows."""

    table: str
    as_of: dt.date
    customers: int
    features: int
    preview: pd.DataFrame


def feature_table_sql(table: str = FEATURE_TABLE) -> str:
    """The statement that (re)creates the table; parameters `cutoff` and `horizon`."""
    return (
        f"CREATE OR REPLACE TABLE {table} ENGINE = MergeTree "
        f"ORDER BY ({', '.join(KEY_COLUMNS)}) AS SELECT * EXCEPT ({LABEL}) "
        f"FROM ({FEATURE_SQL})"
    )


def build_feature_table(
    client: Client,
    as_of: dt.date,
    *,
    table: str = FEATURE_TABLE,
    preview_rows: int = 5,
) -> FeatureTableSummary:
    """Features of every customer with a visit before `as_of` (00:00 UTC) into `table`."""
    database = table.split(".", 1)[0] if "." in table else DATABASE
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        feature_table_sql(table),
        parameters={
            "cutoff": dt.datetime.combine(as_of, dt.time(), dt.UTC),
            "horizon": HORIZON_DAYS,
        },
    )
    columns = [row[0] for row in client.query(f"DESCRIBE TABLE {table}").result_rows]
    preview = client.query_df(f"SELECT * FROM {table} LIMIT {int(preview_rows)}")
    if preview.empty:
        preview = pd.DataFrame(columns=columns)
    return FeatureTableSummary(
        table=table,
        as_of=as_of,
        customers=int(client.command(f"SELECT count() FROM {table}")),
        features=len([c for c in columns if c not in NOT_FEATURES]),
        preview=preview,
    )
