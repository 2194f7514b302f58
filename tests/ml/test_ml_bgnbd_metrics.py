"""BG/NBD maximum likelihood and the metric definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml import bgnbd
from ml.baselines import BGNBDBaseline
from ml.metrics import expected_calibration_error, score_metrics, top_decile_rate


def simulate_bgnbd(n, r, alpha, a, b, seed=0):
    """Exact BG/NBD draws, times in days (α per week as in the module)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1 / alpha, n) / 7.0  # per day
    p = rng.beta(a, b, n)
    T = rng.uniform(70, 560, n)
    x, t_x, t = np.zeros(n), np.zeros(n), np.zeros(n)
    active = np.ones(n, bool)  # no dropout at the first purchase (time 0)
    alive_at_T = np.zeros(n, bool)
    while active.any():
        t_next = t + rng.exponential(1 / lam)
        past_T = active & (t_next > T)
        alive_at_T |= past_T
        active &= ~past_T
        t = np.where(active, t_next, t)
        x[active] += 1
        t_x[active] = t[active]
        active &= rng.random(n) >= p  # dropout after each repeat purchase
    return x, t_x, T, lam, alive_at_T


def test_fit_recovers_parameters_of_simulated_data():
    x, t_x, T, _, _ = simulate_bgnbd(20_000, r=0.8, alpha=5.0, a=0.9, b=4.0, seed=1)
    fit = bgnbd.fit_bgnbd(x, t_x, T)
    assert fit.r == pytest.approx(0.8, rel=0.15)
    assert fit.alpha == pytest.approx(5.0, rel=0.2)
    assert fit.a == pytest.approx(0.9, rel=0.3)
    assert fit.b == pytest.approx(4.0, rel=0.4)
    # The optimum beats a clearly wrong parameter set.
    wrong = np.mean(bgnbd.log_likelihood(np.array([2.0, 1.0, 2.0, 1.0]), x, t_x / 7, T / 7))
    assert fit.mean_log_likelihood > wrong


def test_prediction_matches_simulated_future():
    r, alpha, a, b = 0.8, 5.0, 0.9, 4.0
    x, t_x, T, lam, alive = simulate_bgnbd(40_000, r, alpha, a, b, seed=2)
    params = bgnbd.BGNBDParams(r, alpha, a, b, 0.0)
    prob = bgnbd.prob_purchase_within(params, x, t_x, T, 30)
    # The simulated future: alive at T, then (memoryless) a purchase within 30 days.
    rng = np.random.default_rng(3)
    future = alive & (rng.exponential(1 / lam) <= 30)
    assert bgnbd.p_alive(params, x, t_x, T).mean() == pytest.approx(alive.mean(), abs=0.01)
    assert prob.mean() == pytest.approx(future.mean(), abs=0.01)
    assert bgnbd.p_alive(params, np.array([0.0]), np.array([0.0]), np.array([100.0]))[0] == 1.0
    # More recent last purchase → more likely alive; expected purchases are positive.
    recent = bgnbd.p_alive(params, np.array([5.0]), np.array([95.0]), np.array([100.0]))
    stale = bgnbd.p_alive(params, np.array([5.0]), np.array([10.0]), np.array([100.0]))
    assert recent[0] > stale[0]
    e = bgnbd.expected_purchases(params, np.array([5.0]), np.array([95.0]), np.array([100.0]), 30)
    assert e[0] > bgnbd.prob_purchase_within(params, 5.0, 95.0, 100.0, 30)


def test_baseline_fits_each_business_to_its_own_maximum():
    # Two businesses with different customers and a small one pooled with the rest: every
    # fit starts from the cutoff-wide fit, and must still land on its own optimum.
    parts = [
        simulate_bgnbd(3_000, r=0.8, alpha=5.0, a=0.9, b=4.0, seed=4),
        simulate_bgnbd(3_000, r=2.0, alpha=2.0, a=0.5, b=8.0, seed=5),
        simulate_bgnbd(100, r=1.0, alpha=3.0, a=1.0, b=3.0, seed=6),
    ]
    frame = pd.DataFrame(
        {
            "cutoff": pd.Timestamp("2024-01-01", tz="UTC"),
            "business_id": np.repeat(["a", "b", "c"], [len(p[0]) for p in parts]),
            "bg_x": np.concatenate([p[0] for p in parts]),
            "bg_t_x": np.concatenate([p[1] for p in parts]),
            "bg_T": np.concatenate([p[2] for p in parts]),
        }
    )
    baseline = BGNBDBaseline()
    prob = baseline.predict(frame, 30)
    assert sorted(baseline.params) == ["2024-01-01/a", "2024-01-01/b", "2024-01-01/pooled"]
    for key, rows in (("a", frame["business_id"] == "a"), ("pooled", frame["business_id"] == "c")):
        data = frame.loc[rows, ["bg_x", "bg_t_x", "bg_T"]].to_numpy().T
        cold = bgnbd.fit_bgnbd(*data)
        warm = baseline.params[f"2024-01-01/{key}"]
        assert warm.mean_log_likelihood == pytest.approx(cold.mean_log_likelihood, abs=1e-4)
        expected = bgnbd.prob_purchase_within(warm, *data, 30)
        np.testing.assert_allclose(prob[rows.to_numpy()], expected)
    assert baseline.params["2024-01-01/b"].r > baseline.params["2024-01-01/a"].r


def test_metrics_on_known_values():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    m = score_metrics(y, p)
    assert m["roc_auc"] == pytest.approx(15 / 16)  # one negative outranks one positive
    assert m["brier"] == pytest.approx((0.01 + 0.64 + 0.09 + 7 * 0.01) / 10)
    assert m["overall_rate"] == 0.2
    assert top_decile_rate(y, p) == 1.0 and m["lift_top_decile"] == pytest.approx(5.0)
    # ECE: bins [0.1): 7 rows p=.1 y=0 → .1; [.7]: |1-.7|; [.8]: |0-.8|; [.9]: |1-.9|
    assert expected_calibration_error(y, p) == pytest.approx((0.7 + 0.3 + 0.8 + 0.1) / 10)
    assert np.isnan(score_metrics(np.zeros(5, int), np.full(5, 0.5))["roc_auc"])


def test_grouped_log_likelihood_is_the_log_likelihood_bit_for_bit():
    # The fit's objective evaluates the special functions once per distinct value: the
    # same numbers as `log_likelihood`, so the same fits.
    x, t_x, T, _, _ = simulate_bgnbd(5_000, r=0.8, alpha=5.0, a=0.9, b=4.0, seed=7)
    grouped = bgnbd._GroupedLogLikelihood(x, t_x / 7, T / 7)
    for params in ([0.8, 5.0, 0.9, 4.0], [1.0, 1.0, 1.0, 1.0], [8e3, 1e-4, 1e-4, 8e3]):
        params = np.array(params)
        expected = bgnbd.log_likelihood(params, x, t_x / 7, T / 7)
        np.testing.assert_array_equal(grouped(params), expected)
