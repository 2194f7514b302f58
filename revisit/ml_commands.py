"""`revisit ml …` commands (a Typer sub-app the `revisit` CLI mounts as `ml`)."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    rich_markup_mode="markdown",
    help="Revisit-likelihood model: evaluate, train, score.",
    no_args_is_help=True,
)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _print(obj: Any) -> None:
    sys.stdout.write(json.dumps(_jsonable(obj), indent=2, default=str) + "\n")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@app.command()
def evaluate(
    transactions: Annotated[Path, typer.Option(help="Transaction log: CSV-like or .parquet.")],
    cutoff: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="Held-out cutoff.")],
    horizon_days: Annotated[int, typer.Option(min=1, help="Outcome window in days.")] = 30,
    customer_column: Annotated[str, typer.Option(help="Customer id column.")] = "customer_id",
    date_column: Annotated[str, typer.Option(help="Purchase date column.")] = "date",
    amount_column: Annotated[str, typer.Option(help="Purchase amount column.")] = "amount",
    business_column: Annotated[
        str | None, typer.Option(help="Business column (default: one business).")
    ] = None,
    separator: Annotated[str, typer.Option(help="Field separator; '\\t' for tabs.")] = ",",
    date_format: Annotated[
        str | None, typer.Option(help="strftime format of the dates (default: inferred).")
    ] = None,
    train_cutoffs: Annotated[int, typer.Option(min=1, help="Rolling training cutoffs.")] = 4,
    threads: Annotated[
        int | None, typer.Option(min=1, help="OpenMP threads (default: all cores).")
    ] = None,
) -> None:
    """Train on the log before CUTOFF and print a JSON report of the model and baselines
    on "at least one purchase within HORIZON-DAYS after CUTOFF"."""
    from ml.train import TrainConfig, TrainingError
    from ml.transactions import TransactionLogError, evaluate_transactions

    sep = "\t" if separator in ("\\t", "tab") else separator
    try:
        report = evaluate_transactions(
            transactions,
            cutoff.date(),
            horizon_days,
            customer_column=customer_column,
            date_column=date_column,
            amount_column=amount_column,
            business_column=business_column,
            separator=sep,
            date_format=date_format,
            config=TrainConfig(n_train_cutoffs=train_cutoffs, threads=threads),
        )
    except (TransactionLogError, TrainingError) as ex:
        raise _fail(str(ex)) from None
    _print(report)


@app.command()
def train(
    as_of: Annotated[
        dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Default: today (UTC).")
    ] = None,
    horizon_days: Annotated[int, typer.Option(min=1)] = 30,
) -> None:
    """Train on the warehouse, register the model, promote it if not worse; print metadata."""
    import warehouse
    from ml.registry import train_and_register
    from ml.train import TrainConfig, TrainingError
    from revisit.settings import get_settings

    settings = get_settings()
    day = (as_of or dt.datetime.now(dt.UTC)).date()
    try:
        with warehouse.connect(settings.warehouse_dsn) as client:
            _, registration = train_and_register(
                client, settings.models_dir, day, TrainConfig(horizon_days=horizon_days)
            )
    except (TrainingError, warehouse.WarehouseError) as ex:
        raise _fail(str(ex)) from None
    _print(registration.metadata)
    if registration.refusals:
        # stderr, after the metadata: scripts parsing stdout keep working.
        typer.echo(f"warning: model not promoted: {registration.reason}", err=True)


@app.command()
def score(
    as_of: Annotated[
        dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Default: today (UTC).")
    ] = None,
) -> None:
    """Score every customer with the promoted model into ml.revisit_scores."""
    import warehouse
    from ml.registry import RegistryError
    from ml.scoring import score_customers
    from revisit.settings import get_settings

    settings = get_settings()
    day = (as_of or dt.datetime.now(dt.UTC)).date()
    try:
        with warehouse.connect(settings.warehouse_dsn) as client:
            summary = score_customers(client, settings.models_dir, day)
    except (RegistryError, warehouse.WarehouseError) as ex:
        raise _fail(str(ex)) from None
    _print(summary.__dict__)
