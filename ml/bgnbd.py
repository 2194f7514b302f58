"""BG/NBD (Fader, Hardie & Lee 2005) by maximum likelihood with scipy.

Per customer: x = repeat purchases (purchase days after the first), t_x = time of the
last purchase since the first, T = time from the first purchase to the end of the
calibration period (the cutoff). Time is in days; the fit works in weeks for
conditioning and reports α per week.

While alive a customer buys as a Poisson process with rate λ ~ Gamma(r, α); after each
purchase they drop out with probability p ~ Beta(a, b). Given alive at T the posterior of
λ is Gamma(r + x, α + T), and dropout only follows purchases, so
    P(≥1 purchase in (T, T+H]) = P(alive | x, t_x, T) · (1 − ((α+T)/(α+T+H))^(r+x)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special
from threadpoolctl import ThreadpoolController

WEEK = 7.0
# L-BFGS-B on four parameters calls BLAS on 4-vectors: threads only add wake-up and
# spin time (about half of a fit's time on a busy 2-core machine), so BLAS runs on one.
_THREADPOOLS = ThreadpoolController()


@dataclass(frozen=True)
class BGNBDParams:
    """Fitted parameters (α in weeks) and the maximised mean log-likelihood."""

    r: float
    alpha: float
    a: float
    b: float
    mean_log_likelihood: float


def log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood; params = (r, α, a, b), times in weeks."""
    r, alpha, a, b = params
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = special.betaln(a, b + x) - special.betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return a1 + a2 + np.logaddexp(a3, a4)


class _GroupedLogLikelihood:
    """`log_likelihood` for fixed data, bit for bit, with the costly terms per distinct value.

    x, t_x and T take few distinct values (whole days): the special functions and logs are
    evaluated once per distinct value and gathered, the same floating-point operations on
    the same operands as `log_likelihood`, so the same result, several times faster.
    """

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> None:
        self.x = x
        self.x_values, self.x_index = np.unique(x, return_inverse=True)
        self.t_x_values, self.t_x_index = np.unique(t_x, return_inverse=True)
        self.T_values, self.T_index = np.unique(T, return_inverse=True)
        self.repeat = x > 0

    def __call__(self, params: np.ndarray) -> np.ndarray:
        r, alpha, a, b = params
        xv = self.x_values
        a1 = special.gammaln(r + xv) - special.gammaln(r) + r * np.log(alpha)
        a2 = special.betaln(a, b + xv) - special.betaln(a, b)
        r_x = r + self.x
        a3 = -r_x * np.log(alpha + self.T_values)[self.T_index]
        with np.errstate(divide="ignore", invalid="ignore"):
            head = (np.log(a) - np.log(np.maximum(b + xv - 1, 1e-12)))[self.x_index]
            a4 = np.where(
                self.repeat,
                head - r_x * np.log(alpha + self.t_x_values)[self.t_x_index],
                -np.inf,
            )
        return (a1 + a2)[self.x_index] + np.logaddexp(a3, a4)


def fit_bgnbd(
    x: np.ndarray,
    t_x_days: np.ndarray,
    T_days: np.ndarray,
    max_customers: int = 100_000,
    seed: int = 0,
    start: BGNBDParams | None = None,
) -> BGNBDParams:
    """Maximum-likelihood fit (L-BFGS-B on log-parameters).

    More than `max_customers` customers are subsampled: the fit is of four population
    parameters and a random 100k pins them down as well as millions do. `start` (a fit of
    similar data, e.g. the previous cutoff) is where the search begins: it converges in
    far fewer steps than from scratch.
    """
    x = np.asarray(x, float)
    t_x = np.asarray(t_x_days, float) / WEEK
    T = np.asarray(T_days, float) / WEEK
    if len(x) > max_customers:
        pick = np.random.default_rng(seed).choice(len(x), max_customers, replace=False)
        x, t_x, T = x[pick], t_x[pick], T[pick]

    ll = _GroupedLogLikelihood(x, t_x, T)

    def objective(theta: np.ndarray) -> float:
        value = -np.mean(ll(np.exp(theta)))
        return float(value) if np.isfinite(value) else 1e12

    with _THREADPOOLS.limit(limits=1, user_api="blas"):
        result = optimize.minimize(
            objective,
            x0=np.zeros(4)
            if start is None
            else np.clip(np.log([start.r, start.alpha, start.a, start.b]), -9.0, 9.0),
            method="L-BFGS-B",
            bounds=[(-9.0, 9.0)] * 4,
        )
    r, alpha, a, b = np.exp(result.x)
    return BGNBDParams(float(r), float(alpha), float(a), float(b), float(-result.fun))


def p_alive(params: BGNBDParams, x: np.ndarray, t_x_days: np.ndarray, T_days: np.ndarray):
    """P(the customer is still alive at T)."""
    x = np.asarray(x, float)
    t_x = np.asarray(t_x_days, float) / WEEK
    T = np.asarray(T_days, float) / WEEK
    log_ratio = (params.r + x) * (np.log(params.alpha + T) - np.log(params.alpha + t_x))
    with np.errstate(divide="ignore", over="ignore"):
        odds = np.where(
            x > 0,
            np.exp(np.log(params.a) - np.log(np.maximum(params.b + x - 1, 1e-12)) + log_ratio),
            0.0,
        )
    return 1.0 / (1.0 + odds)


def expected_purchases(
    params: BGNBDParams, x: np.ndarray, t_x_days: np.ndarray, T_days: np.ndarray, horizon_days
):
    """E[purchases in (T, T+H]] (Fader et al. eq. 10, via the Gauss hypergeometric 2F1)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x = np.asarray(x, float)
    T = np.asarray(T_days, float) / WEEK
    h = float(horizon_days) / WEEK
    z = h / (alpha + T + h)
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    first = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + h)) ** (r + x) * hyp)
    return first * p_alive(params, x, t_x_days, T_days)


def prob_purchase_within(
    params: BGNBDParams, x: np.ndarray, t_x_days: np.ndarray, T_days: np.ndarray, horizon_days
) -> np.ndarray:
    """P(at least one purchase in (T, T + horizon]) under the fitted model."""
    x = np.asarray(x, float)
    T = np.asarray(T_days, float) / WEEK
    h = float(horizon_days) / WEEK
    none_if_alive = np.exp(
        (params.r + x) * (np.log(params.alpha + T) - np.log(params.alpha + T + h))
    )
    return p_alive(params, x, t_x_days, T_days) * (1.0 - none_if_alive)
