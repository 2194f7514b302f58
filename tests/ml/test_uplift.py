"""Uplift: the metrics on known answers, the T-learner on a randomized experiment with a
known effect, scoring into ml.uplift_scores and the planner's uplift_targeting rule."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import warehouse
from activation.planner import SEND_PLAN, plan
from ml.contract import create_input_tables as create_ml_inputs
from ml.uplift import (
    UPLIFT_TABLE,
    NoUpliftData,
    UpliftModel,
    ensure_uplift_table,
    fit_uplift,
    gain_at_budget,
    normalized_truth_auuc,
    qini_coefficient,
    qini_curve,
    score_uplift,
    send_frame,
    train_and_report,
)
from tests.activation.planner.conftest import Fixtures, trigger, utc
from tests.activation.planner.conftest import create_input_tables as create_planner_inputs

T0 = pd.Timestamp("2025-01-01", tz="UTC")


def test_qini_curve_by_hand() -> None:
    # best score first: t1 (revisit), c (no), t2 (no), c (revisit)
    y = np.array([1, 0, 0, 1])
    treated = np.array([True, False, True, False])
    score = np.array([4.0, 3.0, 2.0, 1.0])
    share, q = qini_curve(y, treated, score)
    assert share.tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    # k=1: no control yet → 0; k=2: 1 − 0·1/1; k=3: 1 − 0·2/1; k=4: 1 − 1·2/2
    assert q.tolist() == [0.0, 0.0, 1.0, 1.0, 0.0]
    # the reverse order targets the control revisit first: a worse (lower) area
    assert qini_coefficient(y, treated, score) > qini_coefficient(y, treated, -score)


def test_truth_auuc_and_gain_at_budget() -> None:
    rng = np.random.default_rng(0)
    tau = rng.uniform(-0.05, 0.2, 5_000)
    assert normalized_truth_auuc(tau, tau) == pytest.approx(1.0)
    assert normalized_truth_auuc(tau, -tau) < -0.9
    assert abs(normalized_truth_auuc(tau, rng.random(len(tau)))) < 0.05
    assert gain_at_budget(tau, tau, 10) == pytest.approx(np.sort(tau)[-10:].sum())


# --- a randomized experiment in a warehouse ----------------------------------------------


def _experiment(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Customers visiting every `gap` days until `last`; one winback send each at `at`,
    30% held out. The message works only on lapsed customers who used to come often
    (true uplift 0.4 for recency > 2 gaps and gap < 40 days), never on the others."""
    rng = np.random.default_rng(seed)
    gap = rng.integers(7, 80, n)
    recency = rng.integers(1, 200, n)
    at = T0 + pd.to_timedelta(rng.integers(300, 400, n), unit="D")
    holdout = rng.random(n) < 0.3
    base = np.clip(0.6 - recency / 300, 0.05, 0.9)
    tau = np.where((recency > 2 * gap) & (gap < 40), 0.4, 0.0)
    revisit = rng.random(n) < base + np.where(holdout, 0.0, tau)
    # visits at last, last − gap, last − 2·gap, … after T0; a revisit within 29 days
    last = at - pd.to_timedelta(recency, unit="D")
    n_past = ((last - T0).days.to_numpy() - 1) // gap + 1
    who = np.repeat(np.arange(n), n_past)
    k = np.arange(len(who)) - np.repeat(np.cumsum(n_past) - n_past, n_past)
    when = last[who] - pd.to_timedelta(gap[who] * k, unit="D")
    back = np.flatnonzero(revisit)
    later = at[back] + pd.to_timedelta(rng.integers(1, 29, len(back)), unit="D")
    v = pd.DataFrame(
        {
            "customer_id": np.char.add("c", np.concatenate([who, back]).astype(str)),
            "visited_at": when.append(later),
            "k": np.concatenate([k, n_past[back]]),
        }
    )
    s = pd.DataFrame(
        {
            "message_id": np.char.add("m", np.arange(n).astype(str)),
            "customer_id": np.char.add("c", np.arange(n).astype(str)),
            "planned_at": at,
            "holdout": holdout,
        }
    )
    fct_visits = pd.DataFrame(
        {
            "appointment_key": "B1:" + v["customer_id"] + "-" + v["k"].astype(str),
            "business_id": "B1",
            "appointment_id": v["customer_id"] + "-" + v["k"].astype(str),
            "customer_id": v["customer_id"],
            "location_id": "L1",
            "service_id": "S1",
            "visited_at": v["visited_at"],
            "amount": 40.0,
            "currency": "EUR",
            "offer_id": None,
            "updated_at": v["visited_at"],
        }
    )
    fct_sends = s.assign(
        business_id="B1",
        trigger="winback",
        channel="whatsapp",
        sent_at=s["planned_at"].where(~s["holdout"]),
        delivered_at=pd.NaT,
        read_at=pd.NaT,
        replied_at=pd.NaT,
        failed_at=pd.NaT,
        opted_out_at=pd.NaT,
    )
    truth = pd.DataFrame({"message_id": s["message_id"], "tau": tau})
    return fct_visits, fct_sends, truth


@pytest.fixture(scope="module")
def experiment_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, pd.DataFrame]]:
    dsn = f"chdb://{Path(tmp_path_factory.mktemp('uplift')) / 'wh'}"
    visits, sends, truth = _experiment(6_000, seed=1)
    with warehouse.connect(dsn) as client:
        create_ml_inputs(client)
        client.insert_df("marts.fct_visits", visits)
        client.insert_df("marts.fct_message_sends", sends)
    yield dsn, truth


@pytest.fixture(scope="module")
def fitted(experiment_dsn) -> tuple[pd.DataFrame, UpliftModel]:
    """(the sends' frame with the true uplift `tau`, a model fit on its first 4,000)"""
    dsn, truth = experiment_dsn
    with warehouse.connect(dsn) as client:
        frame = send_frame(client, triggers=["winback"])
    frame = frame.merge(truth, left_on="key", right_on="message_id")
    return frame, fit_uplift(frame.iloc[:4_000], min_arm=300, version="t1", threads=1)


def test_t_learner_finds_who_the_message_brings_back(fitted) -> None:
    frame, model = fitted
    assert len(frame) == 6_000
    # point in time: the revisit after the send is the label, never a feature
    assert (frame["recency_days"] > 0).all()
    test = frame.iloc[4_000:]
    assert model.pooled is not None and not model.per_trigger
    uplift = model.predict(test, "winback")
    tau = test["tau"].to_numpy()
    # ranking by predicted uplift recovers most of the true incremental revisits …
    assert normalized_truth_auuc(tau, uplift) > 0.6
    # … and beats targeting by the response score (who revisits when sent) at equal budget
    p_sent, _ = model.arms(test, "winback")
    budget = len(test) // 4
    assert gain_at_budget(tau, uplift, budget) > 1.3 * gain_at_budget(tau, p_sent, budget)
    # one T-learner per trigger when asked (here: the same single trigger)
    separate = fit_uplift(frame.iloc[:4_000], per_trigger=True, threads=1)
    assert "winback" in separate.per_trigger
    assert normalized_truth_auuc(tau, separate.predict(test, "winback")) > 0.6
    # the observed Qini (outcomes and holdout only) agrees in sign
    treated = ~test["holdout"].to_numpy(bool)
    assert qini_coefficient(test["revisited"].to_numpy(), treated, uplift) > 0


def test_scores_are_written_and_the_planner_sends_only_where_it_pays(
    experiment_dsn, fitted
) -> None:
    dsn, _ = experiment_dsn
    _, model = fitted
    with warehouse.connect(dsn) as client:
        at = utc(2026, 3, 1)
        written = score_uplift(client, model, at)
        again = score_uplift(client, model, at)  # a rerun replaces its rows
        rows = client.query(f"SELECT count(), uniqExact(customer_id) FROM {UPLIFT_TABLE}")
        assert written == again == rows.result_rows[0][0] == rows.result_rows[0][1] > 5_000

        # The planner on its own fixtures: segment_offer to three customers whose uplift
        # × value is above, below and missing against a cost of 1.00.
        create_planner_inputs(client)
        ensure_uplift_table(client)
        client.command(f"TRUNCATE TABLE {UPLIFT_TABLE}")
        fx = Fixtures(client)
        for cid in ("pays", "cheap", "unscored"):
            fx.customer("B9", cid, visits=2, revenue=Decimal("80.00"))  # 40 a visit
            fx.rfm("B9", cid, "loyal")
        fx.flush()
        client.insert(
            UPLIFT_TABLE,
            [
                ["B9", "pays", "segment_offer", at, "v", 0.5, 0.45, 0.05],  # 0.05 × 40 = 2
                ["B9", "cheap", "segment_offer", at, "v", 0.5, 0.49, 0.01],  # 0.4
                ["B9", "pays", "other", at, "v", 0.5, 0.0, 0.5],  # another trigger's
            ],
            column_names=[
                "business_id", "customer_id", "trigger", "scored_at", "model_version",
                "p_sent", "p_not_sent", "uplift",
            ],
        )  # fmt: skip
        spec = trigger(
            name="segment_offer",
            kind="segment_offer",
            params={"offers": {"loyal": "10% off"}},
            template={"name": "seg", "text": "{first_name}, {offer}"},
            send_at_local=None,
            uplift_targeting={"message_cost": 1.0},
        )
        result = plan(client, [spec], now=utc(2026, 3, 10, 12))
        got = dict(
            client.query(
                f"SELECT customer_id, reason FROM {SEND_PLAN} WHERE run_id = {{r:String}}",
                parameters={"r": result.run_id},
            ).result_rows
        )
        assert got == {"pays": "", "cheap": "uplift_below_cost", "unscored": "uplift_below_cost"}
        # a fixed value per revisit overrides the customer's average visit amount
        rich = spec.model_copy(
            update={"uplift_targeting": spec.uplift_targeting.model_copy(
                update={"value_per_revisit": 200.0})}
        )  # fmt: skip
        result = plan(client, [rich], now=utc(2026, 3, 10, 12))
        assert sorted(m.customer_id for m in result.messages()) == ["cheap", "pays"]


def test_train_and_report_splits_by_time_and_finds_the_effect(experiment_dsn) -> None:
    # What `revisit ml uplift` and the ml/uplift_scores asset run: the model learns from
    # the sends before the report window and its ranking, on the newest labelled sends,
    # brings back more at a quarter of the budget than sending to everyone prorated.
    dsn, _ = experiment_dsn
    with warehouse.connect(dsn) as client:
        model, report = train_and_report(client, eval_days=30, threads=1)
    winback = report["triggers"]["winback"]
    trained_until = pd.Timestamp(model.trained_until).tz_localize("UTC")
    assert trained_until < pd.Timestamp(report["trained_on_sends_before"])
    assert winback["train"]["sent"] + winback["train"]["holdout"] + winback["report_sends"] < 6_000
    at_budget = winback["incremental_revisits_at_25pct"]
    assert at_budget["uplift"] > 1.3 * at_budget["send_to_all"] > 0, winback


def test_train_and_report_refuses_an_empty_warehouse(settings) -> None:
    with (
        warehouse.connect(settings.warehouse_dsn) as client,
        pytest.raises(NoUpliftData, match="fct_visits is empty"),
    ):
        train_and_report(client)


def test_train_and_report_refuses_too_few_sends(settings) -> None:
    # A new business's few sends: no arm is large enough to fit, which the asset reports
    # as "not trained" instead of failing the run (it raised KeyError when scoring).
    visits, sends, _ = _experiment(400, seed=2)
    with warehouse.connect(settings.warehouse_dsn) as client:
        create_ml_inputs(client)
        client.insert_df("marts.fct_visits", visits)
        client.insert_df("marts.fct_message_sends", sends)
        with pytest.raises(NoUpliftData, match="too few trigger sends"):
            train_and_report(client, eval_days=30, threads=1)
