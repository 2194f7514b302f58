"""`revisit ml evaluate`: the model and its baselines on any transaction log.

The log (CSV/TSV/… or Parquet; one purchase per row: customer id, date, amount, and
optionally a business column) is loaded into a temporary embedded warehouse in the shape
the feature SQL reads (the marts of `ml.contract.input_tables()`, created from their dbt
contracts: purchases become completed visits; there are no phones, messages, bookings or
birthdays, so those features are absent or zero). Then the usual rolling-cutoff training
runs with the given cutoff held out.

Rows that cannot be read (empty customer, unparsable date or amount, negative amount) are
left out and reported with their row number and field; the rest is still evaluated.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import warehouse
from ml.contract import create_input_tables
from ml.features import as_cutoff
from ml.train import TrainConfig, train_and_evaluate


class TransactionLogError(ValueError):
    """The log cannot be used at all (missing file or columns, no valid rows)."""


def read_transactions(
    path: Path,
    *,
    customer_column: str = "customer_id",
    date_column: str = "date",
    amount_column: str = "amount",
    business_column: str | None = None,
    separator: str = ",",
    date_format: str | None = None,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """(purchases, rejected): purchases have business_id, customer_id, visited_at, amount.

    `rejected` lists {"row": 1-based data row, "field": column, "reason": ...}.
    Dates without a time mean 00:00 UTC of that day; times without a zone are UTC.
    """
    path = Path(path)
    if not path.exists():
        raise TransactionLogError(f"{path}: no such file")
    if path.suffix.lower() == ".parquet":
        raw = pd.read_parquet(path)
        raw = raw.astype({c: str for c in raw.columns if c != amount_column})
    else:
        raw = pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False)
    wanted = [customer_column, date_column, amount_column] + (
        [business_column] if business_column else []
    )
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        raise TransactionLogError(
            f"{path}: column(s) {missing} not found; the file has {list(raw.columns)} "
            "(use --customer-column/--date-column/--amount-column/--separator)"
        )
    customer = raw[customer_column].astype(str).str.strip()
    when = pd.to_datetime(raw[date_column], format=date_format, errors="coerce", utc=True)
    amount = pd.to_numeric(raw[amount_column], errors="coerce")
    rejected: list[dict[str, Any]] = []
    checks = [
        (customer.eq("") | customer.str.lower().isin(["nan", "none"]), customer_column,
         "empty customer id"),
        (when.isna(), date_column, f"date not readable (format {date_format or 'auto'})"),
        (amount.isna(), amount_column, "amount not a number"),
        (amount < 0, amount_column, "negative amount (a refund, not a purchase)"),
    ]  # fmt: skip
    bad = np.zeros(len(raw), bool)
    for mask, field, reason in checks:
        mask = mask.to_numpy() & ~bad
        for row in np.nonzero(mask)[0]:
            rejected.append(
                {
                    "row": int(row) + 1,
                    "field": field,
                    "reason": reason,
                    "value": str(raw[field].iloc[row]),
                }
            )
        bad |= mask
    business = (
        raw[business_column].astype(str).str.strip()
        if business_column
        else pd.Series("default", index=raw.index)
    )
    purchases = pd.DataFrame(
        {
            "business_id": business,
            "customer_id": customer,
            "visited_at": when,
            "amount": amount.round(2),
            "row": np.arange(1, len(raw) + 1),
        }
    )[~bad].reset_index(drop=True)
    if purchases.empty:
        raise TransactionLogError(f"{path}: no readable purchase rows ({len(rejected)} rejected)")
    return purchases, rejected


def load_purchases(client: Any, purchases: pd.DataFrame) -> None:
    """Write purchases into the ML input tables as completed visits (fresh warehouse)."""
    create_input_tables(client)
    key = purchases["business_id"] + ":" + purchases["row"].astype(str)
    visited = purchases["visited_at"].astype("datetime64[ms, UTC]")
    visits = pd.DataFrame(
        {
            "appointment_key": key,
            "business_id": purchases["business_id"],
            "appointment_id": purchases["row"].astype(str),
            "customer_id": purchases["customer_id"],
            "location_id": "",
            "service_id": "",
            "visited_at": visited,
            "amount": purchases["amount"].astype(float),
            "currency": "",
            "offer_id": None,
            "updated_at": visited,
        }
    )
    client.insert_df("marts.fct_visits", visits)
    appointments = visits.drop(columns=["visited_at"]).assign(
        status="completed", scheduled_at=visited, created_at=visited
    )
    client.insert_df("marts.fct_appointments", appointments)
    customers = purchases.groupby(["business_id", "customer_id"], as_index=False).agg(
        first_visit_at=("visited_at", "min"), last_visit_at=("visited_at", "max"),
        visits=("row", "size"), revenue=("amount", "sum"),
    )  # fmt: skip
    customers = customers.assign(
        phone_e164="", full_name="", birthday=None, timezone="UTC", consent_marketing=False,
        business_kind="unknown",
    )  # fmt: skip
    client.insert_df("marts.dim_customers", customers)


def evaluate_transactions(
    path: Path,
    cutoff: dt.date | str,
    horizon_days: int = 30,
    *,
    customer_column: str = "customer_id",
    date_column: str = "date",
    amount_column: str = "amount",
    business_column: str | None = None,
    separator: str = ",",
    date_format: str | None = None,
    config: TrainConfig | None = None,
) -> dict[str, Any]:
    """The JSON-ready report of the model and every baseline on the outcome
    "at least one purchase in [cutoff, cutoff + horizon_days)".

    Opens (and removes) its own temporary embedded warehouse, so the calling process must
    not hold another embedded warehouse open.
    """
    purchases, rejected = read_transactions(
        path,
        customer_column=customer_column,
        date_column=date_column,
        amount_column=amount_column,
        business_column=business_column,
        separator=separator,
        date_format=date_format,
    )
    config = replace(config or TrainConfig(), horizon_days=horizon_days)
    warnings = []
    end = as_cutoff(cutoff) + pd.Timedelta(days=horizon_days)
    if purchases["visited_at"].max() < end - pd.Timedelta(days=1):
        warnings.append(
            f"the log ends {purchases['visited_at'].max():%Y-%m-%d}, before the outcome "
            f"window closes ({end:%Y-%m-%d}): late purchases are missing from the labels"
        )
    with (
        tempfile.TemporaryDirectory(prefix="revisit-ml-evaluate-") as tmp,
        warehouse.connect(f"chdb://{Path(tmp) / 'warehouse'}") as client,
    ):
        load_purchases(client, purchases)
        run = train_and_evaluate(client, cutoff, config)
    report = run.report()
    report["input"] = {
        "file": str(path),
        "rows_read": len(purchases) + len(rejected),
        "rows_used": len(purchases),
        "rows_rejected": len(rejected),
        "rejected_examples": rejected[:10],
        "businesses": int(purchases["business_id"].nunique()),
        "customers": int(purchases[["business_id", "customer_id"]].drop_duplicates().shape[0]),
        "first_purchase": f"{purchases['visited_at'].min():%Y-%m-%d}",
        "last_purchase": f"{purchases['visited_at'].max():%Y-%m-%d}",
    }
    report["warnings"] = warnings
    report["outcome"] = f"at least one purchase in [{as_cutoff(cutoff):%Y-%m-%d}, {end:%Y-%m-%d})"
    return report
