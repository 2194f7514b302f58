"""`revisit ml uplift`: train the per-trigger uplift models on the warehouse's trigger
sends and their holdout, report them on the latest sends, and score ml.uplift_scores.

Mounted on the `ml` group by revisit/cli.py (`register`).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import numpy as np
import typer

BUDGET = 0.25


def _qini_at(y: np.ndarray, treated: np.ndarray, score: np.ndarray, share: float) -> float:
    from ml.uplift import qini_curve

    shares, q = qini_curve(y, treated, score)
    return float(q[int(np.searchsorted(shares, share))])


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
    incremental revisits at a 25% budget: uplift ranking vs score ranking vs random.
    """
    import warehouse
    from ml.uplift import WINDOW_DAYS, fit_uplift, qini_coefficient, score_uplift, send_frame
    from revisit.settings import get_settings

    settings = get_settings()
    with warehouse.connect(settings.warehouse_dsn) as client:
        last = client.query("SELECT max(visited_at) FROM marts.fct_visits").result_rows[0][0]
        if last is None or last.year < 1971:
            typer.echo("error: marts.fct_visits is empty: load data and run dbt first", err=True)
            raise typer.Exit(1)
        last = last.replace(tzinfo=dt.UTC) if last.tzinfo is None else last
        # Labels need 30 days after the send: the newest complete sends are the report's,
        # the ones before them train the model.
        labelled = last - dt.timedelta(days=WINDOW_DAYS)
        split = labelled - dt.timedelta(days=eval_days)
        train = send_frame(client, until=split - dt.timedelta(days=WINDOW_DAYS))
        test = send_frame(client, since=split, until=labelled)
        if train.empty or train.holdout.all() or not train.holdout.any():
            typer.echo("error: no trigger sends with both sent and holdout rows to learn from",
                       err=True)  # fmt: skip
            raise typer.Exit(1)
        model = fit_uplift(train, threads=threads)
        report: dict = {
            "model_version": model.version,
            "trained_on_sends_before": str(split - dt.timedelta(days=WINDOW_DAYS)),
            "report_sends": f"[{split}, {labelled})",
            "triggers": {},
        }
        for trigger in model.triggers:
            rows = test[test.trigger == trigger]
            entry: dict = {
                "train": model.counts[trigger],
                "model": "per-trigger" if trigger in model.per_trigger else "pooled",
                "report_sends": len(rows),
            }
            treated = ~rows.holdout.to_numpy(bool)
            if treated.any() and (~treated).any():
                y = rows.revisited.to_numpy()
                up = model.predict(rows, trigger)
                p_sent, _ = model.arms(rows, trigger)
                entry.update(
                    observed_incremental_rate=round(
                        float(y[treated].mean() - y[~treated].mean()), 4
                    ),
                    qini_coefficient=round(qini_coefficient(y, treated, up), 5),
                    incremental_revisits_at_25pct={
                        "uplift": round(_qini_at(y, treated, up, BUDGET), 1),
                        "score": round(_qini_at(y, treated, p_sent, BUDGET), 1),
                        "send_to_all": round(_qini_at(y, treated, up, 1.0) * BUDGET, 1),
                    },
                )
            report["triggers"][trigger] = entry
        if score:
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            report["scored_rows"] = score_uplift(client, model, now)
            report["scored_at"] = str(now)
    typer.echo(json.dumps(report, indent=2))


def register(ml_app: typer.Typer) -> None:
    """Add `uplift` to the `revisit ml` group."""
    ml_app.command("uplift")(uplift)
