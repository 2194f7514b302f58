"""Training quality on the synthetic world, the registry, scoring, and the charts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import warehouse
from ml import registry, train
from ml.features import build_features
from ml.metrics import score_metrics
from ml.plots import calibration_plot_png, lift_chart_png
from ml.scoring import deciles_within_business, score_customers
from ml.train import _sample_per_cutoff, train_and_evaluate
from tests.ml.conftest import EVALUATION_CUTOFF

BASELINES = ("recency", "rfm_cell", "bgnbd")


def test_cutoff_layout_keeps_tuning_and_held_out_apart(trained):
    plan = trained.plan
    assert f"{plan.evaluation:%Y-%m-%d}" == EVALUATION_CUTOFF
    assert plan.tuning == plan.evaluation - pd.Timedelta(days=30)
    # Training labels end before the tuning cutoff; tuning labels end at the held-out one.
    assert all(c + pd.Timedelta(days=30) <= plan.tuning for c in plan.train)
    assert len(plan.train) == 4 and trained.rows["train"] > 20_000


def test_model_beats_every_baseline_and_nears_the_truth(trained, world):
    ev = trained.evaluation.merge(
        world.true_probability(EVALUATION_CUTOFF, 30), on=["business_id", "customer_id"]
    )
    assert len(ev) == len(trained.evaluation)
    ceiling = score_metrics(ev["revisited"], ev["p_true"])
    model = trained.metrics["model"]
    for name in BASELINES:
        assert model["roc_auc"] > trained.metrics[name]["roc_auc"], name
        assert model["brier"] < trained.metrics[name]["brier"], name
    assert model["roc_auc"] >= ceiling["roc_auc"] - 0.03
    assert model["ece"] < 0.03
    assert set(model) >= {"roc_auc", "pr_auc", "brier", "log_loss", "ece", "lift_top_decile"}


def test_stack_leans_on_the_boosting_where_the_features_are_rich(trained):
    # The synthetic world has bookings, messages and cashback: the boosting carries the
    # model and the core logistic (history summaries only) adds next to nothing. On a bare
    # purchase log (CDNOW) the weights come out the other way round.
    stack = trained.report()["stack"]
    assert stack["core_rows"] > trained.rows["tuning"]
    assert stack["weights"]["boosting"] > 0.8 > abs(stack["weights"]["core"])
    # Past the training range the logistic holds its edge value instead of extrapolating.
    X = trained.evaluation_features[trained.model.features].head(500)
    old = X.assign(tenure_days=1e5, days_since_last_visit=1e5, visit_days_all=1e4)
    older = X.assign(tenure_days=1e6, days_since_last_visit=1e6, visit_days_all=1e5)
    core = trained.model.estimator.core
    np.testing.assert_array_equal(
        core.decision_function(train.core_design(old)),
        core.decision_function(train.core_design(older)),
    )
    assert not np.array_equal(train.core_design(old), train.core_design(older))


def test_registry_promotes_only_models_that_are_not_worse(trained, world_dsn, tmp_path: Path):
    models = tmp_path / "models"
    first = registry.register(models, trained)
    assert first.promoted and registry.promoted_version(models) == first.version
    meta = registry.load_metadata(models, first.version)
    assert meta["data_fingerprint"] == trained.data_fingerprint and len(meta["features"]) > 30
    assert meta["cutoffs"]["evaluation"] == EVALUATION_CUTOFF
    assert set(meta["metrics"]) == {"model", *BASELINES}
    assert (models / "revisit" / first.version / "model.joblib").exists()
    assert registry.check_against_promoted(models, first.version).passed

    # A crippled model (a single shallow tree) on the same data is worse: kept, not promoted.
    weak_config = replace(
        trained.config,
        max_iter=1,
        param_grid=({"max_leaf_nodes": 2, "learning_rate": 0.1},),
        stack_core=False,  # the boosting alone: the core logistic would make up for it
    )
    with warehouse.connect(world_dsn) as client:
        weak = train_and_evaluate(client, EVALUATION_CUTOFF, weak_config)
    second = registry.register(models, weak)
    assert not second.promoted
    assert registry.promoted_version(models) == first.version
    assert registry.list_versions(models) == sorted([first.version, second.version])
    check = registry.check_against_promoted(models, second.version)
    assert check.promoted_version == first.version
    assert check.promoted_roc_auc == pytest.approx(trained.metrics["model"]["roc_auc"])
    assert check.drop > 0.02 and not check.passed
    assert registry.auc_regressed(0.80, 0.83) and not registry.auc_regressed(0.82, 0.83)

    # The same good run again is not worse than itself: promoted.
    third = registry.register(models, trained)
    assert third.promoted and registry.promoted_version(models) == third.version
    assert json.loads((models / "revisit" / third.version / "metadata.json").read_text())


def test_scoring_writes_history_and_reruns_replace(trained, world_dsn, tmp_path: Path):
    models = tmp_path / "models"
    version = registry.register(models, trained).version
    with warehouse.connect(world_dsn) as client:
        first = score_customers(client, models, "2025-01-01", threads=1)
        again = score_customers(client, models, "2025-01-01", threads=1)
        other_day = score_customers(client, models, "2025-01-02", threads=1)
        rows = client.query_df(
            "SELECT scored_at, model_version, count() AS n, uniqExact(business_id, customer_id) "
            "AS pairs, min(decile) AS lo, max(decile) AS hi, avg(p_revisit) AS p, "
            "countIf(length(reason_codes) > 0) AS with_reasons "
            "FROM ml.revisit_scores GROUP BY scored_at, model_version ORDER BY scored_at"
        )
        population = client.query_df(
            "SELECT uniqExact(business_id, customer_id) AS n FROM marts.fct_visits FINAL "
            "WHERE visited_at < '2025-01-01'"
        )["n"][0]
        sample = client.query_df(
            "SELECT reason_codes FROM ml.revisit_scores WHERE length(reason_codes) > 0 LIMIT 50"
        )
        stored = client.query_df(
            "SELECT business_id, customer_id, p_revisit FROM ml.revisit_scores "
            "WHERE scored_at = '2025-01-01'"
        )
        # Scoring computes the features without the label (one pass less over the
        # visits): the probabilities are those of the training path's features.
        labelled = build_features(client, ["2025-01-01"], trained.model.horizon_days)
    assert first.model_version == version and first.rows == again.rows == population
    assert len(rows) == 2 and list(rows["n"]) == [population, other_day.rows]
    assert (rows["n"] == rows["pairs"]).all()  # the rerun replaced, not duplicated
    assert (rows["lo"] == 1).all() and (rows["hi"] == 10).all()
    assert 0.02 < rows["p"][0] < 0.6 and rows["with_reasons"][0] > population / 2
    codes = [code for row in sample["reason_codes"] for code in row]
    features = set(trained.model.reason_features)
    assert all(code.rsplit(":", 1)[0] in features and code[-1] in "+-" for code in codes)
    expected = labelled[["business_id", "customer_id"]].assign(p=trained.model.predict(labelled))
    both = stored.merge(expected, on=["business_id", "customer_id"], validate="1:1")
    assert len(both) == population
    np.testing.assert_array_equal(both["p_revisit"].to_numpy(), both["p"].to_numpy())


def test_blockwise_prediction_equals_whole_frame_prediction(trained, monkeypatch):
    frame = trained.evaluation_features
    frozen = trained.model.estimator.frozen
    assert isinstance(frozen, train.BlockwiseFrozen)
    whole = frozen.estimator.decision_function(frame[trained.model.features])
    monkeypatch.setattr(train, "PREDICT_BLOCK_ROWS", 997)  # blocks of uneven size
    assert len(frame) > 5 * 997
    np.testing.assert_array_equal(frozen.decision_function(frame[trained.model.features]), whole)
    np.testing.assert_allclose(trained.model.predict(frame), trained.evaluation["model"])


def test_binned_prediction_equals_raw_prediction_on_odd_values(trained):
    # Unseen and negative categories, NaN and infinities: the binned walk of the trees
    # must send every row where the booster's own (raw-value) prediction sends it.
    frame = trained.evaluation_features
    pipe = trained.model.estimator.frozen.estimator
    booster = pipe[-1]
    X = pipe[:-1].transform(frame[trained.model.features])
    X[::7, 0] = 99.0
    X[::11, 1] = -1.0
    X[::13, 1] = np.nan
    X[::5, 5] = np.nan
    X[::17, 6] = np.inf
    X[::19, 7] = -np.inf
    np.testing.assert_array_equal(
        train._binned_raw_prediction(booster, X), booster.decision_function(X)
    )


def test_training_sample_keeps_every_cutoffs_share():
    cutoffs = pd.to_datetime(["2024-01-01"] * 600 + ["2024-02-01"] * 300, utc=True)
    frame = pd.DataFrame({"cutoff": cutoffs, "revisited": np.arange(900) % 3 == 0})
    sample = _sample_per_cutoff(frame, 300, seed=0)
    assert sample["cutoff"].value_counts().sort_index().tolist() == [200, 100]
    assert not sample.index.duplicated().any()
    assert _sample_per_cutoff(frame, 1_000, seed=0) is frame


def test_deciles_are_per_business():
    business = pd.Series(["a"] * 20 + ["b"] * 10)
    p = np.concatenate([np.linspace(0, 1, 20), np.linspace(0, 0.1, 10)])
    deciles = deciles_within_business(business, p)
    assert list(deciles[:20]) == [10, 10, 9, 9, 8, 8, 7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert list(deciles[20:]) == list(range(10, 0, -1))


def test_charts_are_png(trained):
    ev = trained.evaluation
    scores = {name: ev[name].to_numpy() for name in ("model", *BASELINES)}
    for png in (
        calibration_plot_png(ev["revisited"], scores),
        lift_chart_png(ev["revisited"], scores),
    ):
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000
