"""The quality gate: a degenerate model is refused, and scoring falls back to a baseline."""

from __future__ import annotations

from pathlib import Path

import pytest

import warehouse
from ml import registry
from ml.baselines import BaselineModel
from ml.scoring import score_customers
from ml.train import TrainConfig, train_and_evaluate
from simulation.visit_world import generate_world
from tests.ml.conftest import EVALUATION_CUTOFF


@pytest.fixture(scope="module")
def tiny_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A business with a few dozen customers: too few for a model worth trusting."""
    dsn = f"chdb://{Path(tmp_path_factory.mktemp('tiny-world')) / 'warehouse'}"
    with warehouse.connect(dsn) as client:
        generate_world(n_customers=60, seed=5).load(client)
    return dsn


def test_a_model_on_a_few_dozen_customers_is_refused_and_a_baseline_scores(
    tiny_dsn: str, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    with warehouse.connect(tiny_dsn) as client:
        run = train_and_evaluate(client, EVALUATION_CUTOFF, TrainConfig(threads=1))
        registration = registry.register(models, run)
        held_out = int(run.metrics["model"]["n"])
        assert held_out < 200
        assert not registration.promoted
        assert any(f"{held_out} held-out customers" in r for r in registration.refusals)
        assert registration.reason.startswith("refused: ")

        # Nothing was promoted before, so the best baseline now is, under its own version.
        best = registry.best_baseline(run.metrics)
        fallback = registration.fallback_version
        assert fallback == f"{registration.version}-baseline-{best}"
        assert registry.promoted_version(models) == fallback
        assert registry.load_metadata(models, fallback)["kind"] == "baseline"
        _, model = registry.load_model(models)
        assert isinstance(model, BaselineModel) and model.name == best

        summary = score_customers(client, models, "2025-01-01", threads=1)
        scores = client.query_df(
            "SELECT model_version, count() AS n, min(p_revisit) AS lo, max(p_revisit) AS hi, "
            "max(length(reason_codes)) AS codes FROM ml.revisit_scores GROUP BY model_version"
        )
    assert summary.model_version == fallback and summary.rows > 0
    assert list(scores["model_version"]) == [fallback]  # every score says it is a baseline
    assert scores["n"][0] == summary.rows and 0 <= scores["lo"][0] <= scores["hi"][0] <= 1
    assert scores["codes"][0] == 0


def test_a_refused_model_leaves_the_promoted_one_in_place(trained, tmp_path: Path) -> None:
    models = tmp_path / "models"
    first = registry.register(models, trained)
    assert first.promoted and not first.refusals

    # The same run against a gate it cannot meet (beat the best baseline by 0.5 AUC).
    strict = registry.QualityGate(min_auc_margin=0.5)
    refused = registry.register(models, trained, gate=strict)
    assert not refused.promoted and refused.fallback_version is None
    assert "is not above the best baseline" in refused.refusals[0]
    assert registry.promoted_version(models) == first.version


def test_gate_reasons_name_the_numbers() -> None:
    def metrics(n: int, rate: float, auc: float, baseline_auc: float) -> dict:
        base = {"n": n, "overall_rate": rate, "brier": 0.2}
        return {
            "model": {**base, "roc_auc": auc},
            "recency": {**base, "roc_auc": baseline_auc},
            "bgnbd": {**base, "roc_auc": baseline_auc - 0.01},
        }

    gate = registry.QualityGate()
    assert gate.refusals(metrics(5000, 0.3, 0.80, 0.78)) == []
    assert gate.refusals(metrics(5000, 0.3, 0.782, 0.78)) == [
        "ROC-AUC 0.7820 is not above the best baseline (recency 0.7800) by 0.005"
    ]
    few_positives = gate.refusals(metrics(1000, 0.01, 0.9, 0.7))
    assert few_positives == [
        "10 of 1000 held-out customers revisited (at least 20 revisits and non-revisits needed)"
    ]
    single_class = gate.refusals(metrics(300, 0.0, float("nan"), float("nan")))
    assert len(single_class) == 2 and "ROC-AUC nan" in single_class[1]
