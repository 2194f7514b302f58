"""ML assets (group `ml`): features as of the run date, the trained model, the scores,
and the per-trigger uplift scores the planner's `uplift_targeting` reads.

The work is in `ml/` (feature table, training and registry, scoring); this module hands
it a warehouse client and the run's config and turns its results into metadata (metrics,
calibration plot, lift chart) and the check against the promoted model.
"""

import base64
import datetime as dt
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from orchestration.defs.models.assets import exposure_keys
from orchestration.resources import WarehouseResource
from revisit.settings import get_settings

GROUP = "ml"
FEATURES = AssetKey(["ml", "revisit_features"])
MODEL = AssetKey(["ml", "revisit_model"])
SCORES = AssetKey(["ml", "revisit_scores"])
UPLIFT = AssetKey(["ml", "uplift_scores"])
# The marts the model reads: the dbt exposure `revisit_model` (dbt_project/models/exposures.yml).
INPUTS = exposure_keys("revisit_model")
ROC_AUC_CHECK = "roc_auc_not_below_promoted"
QUALITY_GATE_CHECK = "model_passes_quality_gate"


class MlConfig(Config):
    as_of: str = ""
    """Run date (YYYY-MM-DD): features and scores as of it, evaluation at as_of − horizon.
    Empty means today (UTC)."""
    threads: int = 0
    """OpenMP threads for fitting and scoring; 0 means all cores."""


def _as_of(config: MlConfig) -> dt.date:
    return dt.date.fromisoformat(config.as_of) if config.as_of else dt.datetime.now(dt.UTC).date()


def _image(png: bytes) -> MetadataValue:
    return MetadataValue.md(f"![chart](data:image/png;base64,{base64.b64encode(png).decode()})")


def _metric_table(metrics: dict[str, dict[str, float]]) -> str:
    frame = pd.DataFrame(metrics).T
    return frame.round(4).to_markdown()


@multi_asset(
    specs=[
        AssetSpec(FEATURES, group_name=GROUP, deps=INPUTS, kinds={"clickhouse", "python"},
                  description="Point-in-time features of every customer with a visit, as of "
                  "the run date (ml.revisit_features)."),
        AssetSpec(MODEL, group_name=GROUP, deps=[FEATURES], kinds={"scikitlearn"},
                  description="Gradient boosting stacked with a logistic on purchase-history "
                  "summaries, weighed and calibrated on the tuning cutoff, trained on rolling "
                  "cutoffs, "
                  "compared with recency, RFM-cell and BG/NBD baselines; promoted only "
                  "when it passes the quality gate and is not worse than the promoted "
                  "model."),
        AssetSpec(SCORES, group_name=GROUP, deps=[MODEL], kinds={"clickhouse"},
                  description="p_revisit per customer with decile and reason codes "
                  "(ml.revisit_scores, history kept)."),
    ],
    check_specs=[
        AssetCheckSpec(
            ROC_AUC_CHECK, asset=MODEL,
            description="The new model's ROC-AUC is at most 0.02 below the promoted "
            "model's on the same held-out data.",
        ),
        AssetCheckSpec(
            QUALITY_GATE_CHECK, asset=MODEL,
            description="Enough held-out customers and revisits, and ROC-AUC above the "
            "best baseline's by a margin; otherwise the model is not promoted.",
        ),
    ],
    can_subset=False,
)  # fmt: skip
def revisit_ml(
    context: AssetExecutionContext, config: MlConfig, warehouse: WarehouseResource
) -> Any:
    """Features, training with evaluation against baselines, registry, scoring."""
    from ml.feature_table import build_feature_table
    from ml.features import LABEL
    from ml.plots import calibration_plot_png, lift_chart_png
    from ml.registry import check_against_promoted, train_and_register
    from ml.scoring import score_customers
    from ml.train import TrainConfig

    as_of = _as_of(config)
    threads = config.threads or None
    models_dir = get_settings().models_dir
    with warehouse.get_client() as client:
        features = build_feature_table(client, as_of)
        yield MaterializeResult(
            asset_key=FEATURES,
            metadata={
                "as_of": str(as_of),
                "table": features.table,
                "customers": features.customers,
                "features": features.features,
                "preview": MetadataValue.md(features.preview.to_markdown(index=False)),
            },
        )

        run, registration = train_and_register(
            client, models_dir, as_of, TrainConfig(threads=threads)
        )
        labels = run.evaluation[LABEL].to_numpy(int)
        scorers = {name: run.evaluation[name].to_numpy() for name in run.metrics}
        yield MaterializeResult(
            asset_key=MODEL,
            metadata={
                "version": registration.version,
                "promoted": registration.promoted,
                "decision": registration.reason,
                "fallback_version": str(registration.fallback_version),
                "cutoffs": MetadataValue.json(run.plan.as_dict()),
                "metrics": MetadataValue.md(_metric_table(run.metrics)),
                "roc_auc": float(run.metrics["model"]["roc_auc"]),
                "brier": float(run.metrics["model"]["brier"]),
                "calibration": _image(calibration_plot_png(labels, scorers)),
                "lift": _image(lift_chart_png(labels, scorers)),
                "seconds": MetadataValue.json(run.seconds),
            },
        )
        yield AssetCheckResult(
            asset_key=MODEL,
            check_name=QUALITY_GATE_CHECK,
            passed=not registration.refusals,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "refusals": MetadataValue.json(list(registration.refusals)),
                "fallback_version": str(registration.fallback_version),
            },
        )
        check = check_against_promoted(models_dir, registration.version)
        yield AssetCheckResult(
            asset_key=MODEL,
            check_name=ROC_AUC_CHECK,
            passed=check.passed,
            metadata={
                "new_roc_auc": check.new_roc_auc,
                "promoted_version": str(check.promoted_version),
                "promoted_roc_auc": check.promoted_roc_auc,
                "max_drop": check.max_drop,
            },
        )

        summary = score_customers(client, models_dir, as_of, threads=threads)
        yield MaterializeResult(
            asset_key=SCORES,
            metadata={
                "model_version": summary.model_version,
                "scored_at": str(summary.scored_at),
                "customers": summary.rows,
                "mean_p_revisit": float(summary.mean_p_revisit),
                "seconds": MetadataValue.json(summary.seconds),
            },
        )


@multi_asset(
    specs=[
        AssetSpec(UPLIFT, group_name=GROUP, deps=INPUTS, kinds={"scikitlearn", "clickhouse"},
                  description="Per trigger, each customer's expected incremental revisits "
                  "from a message (T-learner on the trigger sends vs their random holdout, "
                  "ml/uplift.py), in ml.uplift_scores. Skipped, with the reason, while no "
                  "send has a holdout to learn from."),
    ],
)  # fmt: skip
def uplift_scores(
    context: AssetExecutionContext, config: MlConfig, warehouse: WarehouseResource
) -> MaterializeResult:
    """Train the uplift models, report them on the newest labelled sends, score everyone."""
    from ml.uplift import NoUpliftData, score_uplift, train_and_report

    # Scored as of the start of the run date (the features count visits before it).
    at = (
        dt.datetime.combine(_as_of(config), dt.time(), dt.UTC)
        if config.as_of
        else dt.datetime.now(dt.UTC).replace(microsecond=0)
    )
    with warehouse.get_client() as client:
        try:
            model, report = train_and_report(client, threads=config.threads or None)
        except NoUpliftData as ex:
            context.log.warning(f"uplift not trained: {ex}")
            return MaterializeResult(metadata={"trained": False, "reason": str(ex)})
        rows = score_uplift(client, model, at)
    evaluated = {k: v for k, v in report["triggers"].items() if "qini_coefficient" in v}
    table = pd.DataFrame(
        {
            trigger: {
                "report sends": v["report_sends"],
                "observed incremental rate": v["observed_incremental_rate"],
                "Qini": v["qini_coefficient"],
                **{f"at 25%: {k}": n for k, n in v["incremental_revisits_at_25pct"].items()},
            }
            for trigger, v in evaluated.items()
        }
    ).T
    return MaterializeResult(
        metadata={
            "trained": True,
            "model_version": model.version,
            "scored_at": str(at),
            "rows": rows,
            "report": MetadataValue.json(report),
            "on the newest labelled sends": MetadataValue.md(
                table.to_markdown() if len(table) else "no trigger with both arms"
            ),
            "fit_seconds": round(model.seconds, 2),
        }
    )


ASSETS = [revisit_ml, uplift_scores]
