"""The peers benchmark's RFM in pandas and in PostgreSQL agree with the customer_rfm model.

benchmarks/bench_peers.py times the model against the same logic in pandas and in
PostgreSQL; the comparison means something only if the three compute the same scores.
Here on a small sample with the cases that decide ranks: ties on every measure, visits
outside the 365-day window (frequency and monetary 0), visits after the as-of date (not
counted), several businesses ranked separately.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import psycopg

import warehouse
from benchmarks.bench_peers import COMPARED, SEGMENT_MAP, rfm_pandas, rfm_postgres_sql
from revisit.settings import Settings
from tests.postgres import PostgresCluster
from warehouse.dbt_runner import run_dbt

AS_OF = date(2026, 11, 1)
KEY = ["business_id", "customer_id"]


def _visits() -> pd.DataFrame:
    rng = np.random.default_rng(19)
    rows = 3000
    end = datetime(AS_OF.year, AS_OF.month, AS_OF.day, tzinfo=UTC) + timedelta(days=1)
    # Whole days back (many ties on recency), some beyond the window, some after AS_OF.
    offsets = rng.integers(-3, 500, rows) * 86_400 + rng.integers(0, 86_400, rows)
    # A customer whose only visit is after the as-of date has no RFM row; one whose only
    # visit is before the window has frequency and monetary 0.
    edges = [
        {"business_id": "b1", "customer_id": "late", "visited_at": end + timedelta(hours=1),
         "amount": Decimal(700)},
        {"business_id": "b2", "customer_id": "old", "visited_at": end - timedelta(days=400),
         "amount": Decimal(700)},
    ]  # fmt: skip
    sample = pd.DataFrame(
        {
            "business_id": rng.choice(["b1", "b2", "b3"], rows),
            "customer_id": np.char.add("c", rng.integers(0, 120, rows).astype(str)),
            "visited_at": [end - timedelta(seconds=int(s)) for s in offsets],
            # Few distinct prices: customers tie on monetary too.
            "amount": [Decimal(int(a)) for a in rng.choice([500, 1000, 1500], rows)],
        }
    )
    return pd.concat([sample, pd.DataFrame(edges)], ignore_index=True)


def test_pandas_and_postgres_compute_the_models_scores(
    settings: Settings, postgres_cluster: PostgresCluster
) -> None:
    visits = _visits()
    with warehouse.connect(settings.warehouse_dsn) as client:
        client.command("CREATE DATABASE IF NOT EXISTS marts")
        client.command(
            "CREATE TABLE marts.fct_visits (business_id String, customer_id String, "
            "visited_at DateTime64(3, 'UTC'), amount Decimal(18, 2)) "
            "ENGINE = MergeTree ORDER BY (business_id, customer_id)"
        )
        client.insert_df("marts.fct_visits", visits)
    run_dbt(
        ["build", "--select", "rfm_segment_map", "customer_rfm", "--quiet",
         "--vars", f'{{"as_of_date": "{AS_OF}"}}'],
        settings.dbt(), capture=True,
    )  # fmt: skip
    with warehouse.connect(settings.warehouse_dsn) as client:
        model = client.query_df(
            "SELECT business_id, customer_id, recency_days, frequency, "
            "toInt64(monetary * 100) AS monetary_cents, r_score, f_score, m_score, segment "
            "FROM marts.customer_rfm"
        )
    segments = pd.read_csv(SEGMENT_MAP, dtype=str)
    cents = visits.assign(amount_cents=(visits["amount"] * 100).astype("int64"))
    in_pandas = rfm_pandas(cents.drop(columns="amount"), AS_OF, segments)

    dsn = postgres_cluster.create_database().replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET timezone = 'UTC'")
        conn.execute(
            "CREATE TABLE visits (business_id text, customer_id text, visited_at timestamp, "
            "amount numeric(18, 2))"
        )
        with conn.cursor().copy("COPY visits FROM STDIN") as copy:
            for row in visits.itertuples(index=False):
                copy.write_row((row[0], row[1], row[2].replace(tzinfo=None), row[3]))
        conn.execute("CREATE TABLE rfm_segment_map (rfm_cell text, segment text)")
        with conn.cursor().copy("COPY rfm_segment_map FROM STDIN") as copy:
            for row in segments.itertuples(index=False):
                copy.write_row(tuple(row))
        rows = conn.execute(
            f"SELECT business_id, customer_id, recency_days, frequency, "
            f"(monetary * 100)::bigint, r_score, f_score, m_score, segment "
            f"FROM ({rfm_postgres_sql(AS_OF)}) AS rfm"
        ).fetchall()
    in_postgres = pd.DataFrame(rows, columns=[*KEY, *COMPARED])

    # The sample exercises what decides ranks.
    counted = visits[visits["visited_at"] < pd.Timestamp(AS_OF, tz="UTC") + pd.Timedelta(days=1)]
    assert len(model) == len(counted[KEY].drop_duplicates()) < len(visits[KEY].drop_duplicates())
    assert (model["frequency"] == 0).any() and model["r_score"].nunique() == 3
    assert (
        model.groupby("business_id")["monetary_cents"].apply(lambda s: s.duplicated().any()).all()
    )
    expected = model.sort_values(KEY).reset_index(drop=True)[[*KEY, *COMPARED]].astype(str)
    for name, other in (("pandas", in_pandas), ("postgres", in_postgres)):
        got = other.sort_values(KEY).reset_index(drop=True)[[*KEY, *COMPARED]].astype(str)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False, obj=name)
