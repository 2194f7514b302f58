"""`revisit ml uplift`: train the per-trigger uplift models on the warehouse's trigger
sends and their holdout, report them on the latest sends, and score ml.uplift_scores.

Mounted on the `ml` group by revisit/cli.py (`register`). The work is
`ml.uplift.train_and_report`, which the Dagster asset `ml/uplift_scores` runs too.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer

BUDGET = 0.25


def uplift(
    eval_days: Annotated[
        int, typer.Option(min=7, help="Report on the sends of the last N days with labels.")
    ] = 60,
    score: Annotated[bool, typer.Option(help="Write ml.uplift_scores for every customer.")] = True,
    threads: Annotated[
        int | None, typer.Option(min=1, help="OpenMP threads (default: all cores).")
    ] = None,
) -> None:
    """Train uplift models per trigger (sent vs holdout) and score ml.uplift_scores.

    Prints, per trigger, the observed Qini on the latest labelled sends and their
    incremental revisits at a 25% budget: picked by uplift, by score, and sending to
    everyone prorated to the budget (what a random pick yields). Exit 1 when the
    warehouse has no visits or no trigger sends with a holdout to learn from.
    """
    import warehouse
    from ml.uplift import NoUpliftData, score_uplift, train_and_report
    from revisit.settings import get_settings

    settings = get_settings()
    with warehouse.connect(settings.warehouse_dsn) as client:
        try:
            model, report = train_and_report(
                client, eval_days=eval_days, budget=BUDGET, threads=threads
            )
        except NoUpliftData as ex:
            typer.echo(f"error: {ex}", err=True)
            raise typer.Exit(1) from ex
        if score:
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            report["scored_rows"] = score_uplift(client, model, now)
            report["scored_at"] = str(now)
    typer.echo(json.dumps(report, indent=2))


def register(ml_app: typer.Typer) -> None:
    """Add `uplift` to the `revisit ml` group."""
    ml_app.command("uplift")(uplift)
