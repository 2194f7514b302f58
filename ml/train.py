"""Training and evaluation of the revisit model on rolling historical cutoffs.

Time layout for an evaluation cutoff E and horizon H (step S, default S = H):

    train cutoffs  V−S·n … V−S   (labels end by V: nothing of the tuning period leaks in)
    tuning cutoff  V = E − H     (hyper-parameters, number of trees, calibration)
    held-out       E             (every metric, and the promotion comparison)

The model stacks two learners (`StackedEstimator`): a scikit-learn pipeline (ordinal-encoded
categoricals → histogram gradient boosting) on every feature, and a logistic regression on
a few log-scaled, horizon-invariant summaries of the purchase history (`core_design`:
BG/NBD P(alive) and expected visits, recency, frequency, tenure, spend, recent counts,
recency over the typical gap). A two-input logistic fitted on the tuning cutoff combines
their log-odds and is the calibration. The boosting learns interactions where a log is
rich (bookings, messages, cashback); on a bare purchase log its trees fit one young cohort
at the training cutoff and generalise worse to older customers than the smooth logistic
(CDNOW, 90 days from 1997-08-02, a cutoff before the benchmark's: boosting alone 0.741
ROC-AUC, stacked 0.758, BG/NBD 0.751), and the stack weighs that per data set. Everything
tuned is tuned on the tuning cutoff only; the held-out cutoff is touched once: each
candidate of the parameter grid (one by default) is fitted once on the training rows (at
most `max_train_rows`, the same share of every training cutoff) and stopped early by its
log loss on a sample of the tuning cutoff (`tune_rows`); the candidate with the lowest
loss is the boosting. The logistic is fitted on the training rows and the tuning sample
together: its labels end by the held-out cutoff too, and they are the customers closest
in age to the held-out ones (it has ~15 coefficients, so fitting it on the rows its stack
weight is then fitted on costs little optimism). The stack is fitted on the tuning sample.

Short histories: when no training cutoff of the horizon H itself holds enough customers
(`choose_label_window`: at least `min_train_share` of the held-out cutoff's), the model is
trained and tuned on the longest shorter label window L that does, with the same layout
for L, and its probabilities are carried to H by BG/NBD (`ml.baselines.transfer_horizon`:
logit p_H = logit p_L + logit bg_H − logit bg_L, BG/NBD fitted on the history before each
cutoff). The recency and RFM baselines are carried the same way; the report says which
window was used and why (`label_window_days`, `strategy`, `windows_tried`).

Predictions are made in row blocks (`BlockwiseFrozen`); this is what keeps scoring a
million rows, and the evaluation, calibration and reason-code tables, cheap.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from clickhouse_connect.driver.client import Client
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble._hist_gradient_boosting._binning import _map_to_bins
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder, StandardScaler
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
from threadpoolctl import threadpool_limits

from ml.baselines import all_baselines, transfer_horizon
from ml.features import (
    CATEGORICAL_FEATURES,
    FEATURES,
    ID_COLUMNS,
    LABEL,
    NUMERIC_FEATURES,
    as_cutoff,
    build_features,
)
from ml.metrics import score_metrics

# One candidate by default: the number of trees is still tuned (early stopping on the
# tuning cutoff). A second candidate (learning rate 0.1, 15 leaves, min 50 per leaf, no
# L2) lost to this one by 0.3–0.4% log loss on the 100k and 200k synthetic worlds and
# cost another ~30% of the fit; pass `param_grid` to search more.
DEFAULT_GRID: tuple[dict[str, Any], ...] = (
    {
        "learning_rate": 0.05,
        "max_leaf_nodes": 31,
        "min_samples_leaf": 100,
        "l2_regularization": 1.0,
    },
)


# Rows per prediction call. The gradient-boosting predictor walks every row through one
# tree, then the next: on a million rows the feature matrix (~0.5 GB of float64) is
# streamed from memory once per tree. In blocks this size a block stays in the CPU caches
# across all trees: about 3x faster on 1M rows, the same predictions bit for bit.
PREDICT_BLOCK_ROWS = 16_384


def _blockwise(method: Any, X: pd.DataFrame | np.ndarray, workers: int = 1) -> np.ndarray:
    """`method(X)` computed over blocks of PREDICT_BLOCK_ROWS rows and stacked.

    With `workers` > 1 the blocks are shared among that many threads (`method` must then
    release the GIL for its heavy part and use one OpenMP thread itself); the result is
    the same, in the same order.
    """
    if len(X) <= PREDICT_BLOCK_ROWS:
        return method(X)
    rows = X.iloc if isinstance(X, pd.DataFrame) else X
    blocks = (rows[i : i + PREDICT_BLOCK_ROWS] for i in range(0, len(X), PREDICT_BLOCK_ROWS))
    if workers <= 1:
        return np.concatenate([method(block) for block in blocks])
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.concatenate(list(pool.map(method, blocks)))


def _binned_raw_prediction(
    booster: HistGradientBoostingClassifier, X: np.ndarray, n_threads: int | None = None
) -> np.ndarray:
    """`booster.decision_function(X)` of a binary booster, computed on binned rows.

    The trees are walked on the booster's own uint8 bins instead of the float64 values:
    an 8x smaller matrix to stream per tree, about 20% less time, and the same
    predictions bit for bit — a value goes left of a numeric split exactly when its bin
    does (the split thresholds are bin edges), NaN takes the missing-value bin, and a
    category the booster never saw, which the raw predictor treats as missing, is made
    missing before binning. The sum runs from the baseline over the trees in order, as
    in `decision_function`.
    """
    X = np.array(X, dtype=np.float64, order="C")  # a copy: categories are edited below
    mapper = booster._bin_mapper
    for column in np.flatnonzero(mapper.is_categorical_):
        values = X[:, column]
        values[~np.isin(values, mapper.bin_thresholds_[column])] = np.nan
    missing_bin = mapper.missing_values_bin_idx_
    if n_threads is None:
        n_threads = _openmp_effective_n_threads()  # as decision_function: the current limit
    binned = np.zeros_like(X, dtype=np.uint8, order="F")
    _map_to_bins(X, mapper.bin_thresholds_, mapper.is_categorical_, missing_bin, n_threads, binned)
    raw = np.full(len(X), booster._baseline_prediction[0, 0], dtype=np.float64)
    for (predictor,) in booster._predictors:
        raw += predictor.predict_binned(binned, missing_bin, n_threads)
    return raw


_BOOSTER_INTERNALS = ("_bin_mapper", "_predictors", "_baseline_prediction", "_loss")


def _binnable(booster: Any) -> bool:
    """Whether `booster` is a binary HistGradientBoosting with the internals that
    `_binned_raw_prediction` reads (else it predicts through its public methods)."""
    return (
        isinstance(booster, HistGradientBoostingClassifier)
        and getattr(booster, "n_trees_per_iteration_", None) == 1
        and all(hasattr(booster, name) for name in _BOOSTER_INTERNALS)
        and hasattr(booster._bin_mapper, "missing_values_bin_idx_")
    )


def _fast_decision(estimator: Any, n_threads: int | None = None) -> Any:
    """A blockwise-usable `decision_function` on binned rows when `estimator` allows it.

    `estimator` is the model pipeline (encoders, then a binary HistGradientBoosting); for
    anything else (or a scikit-learn whose internals differ) its own decision_function.
    """
    booster = estimator[-1] if isinstance(estimator, Pipeline) else estimator
    if not _binnable(booster):
        return estimator.decision_function
    transforms = list(estimator[:-1]) if isinstance(estimator, Pipeline) else []

    def decision(X: pd.DataFrame | np.ndarray) -> np.ndarray:
        for step in transforms:
            X = step.transform(X)
        return _binned_raw_prediction(booster, X, n_threads)

    return decision


def _positive_probability(booster: HistGradientBoostingClassifier, X: np.ndarray) -> np.ndarray:
    """`booster.predict_proba(X)[:, 1]`, blockwise and on binned rows when possible."""
    if not _binnable(booster):
        return _blockwise(booster.predict_proba, X)[:, 1]
    raw = _blockwise(_fast_decision(booster), X)
    return booster._loss.predict_proba(raw.reshape(-1, 1))[:, 1]


class BlockwiseFrozen(FrozenEstimator):
    """A fitted estimator, frozen (fit is a no-op), that predicts in row blocks.

    Wrapped in the calibration, so calibrating, evaluating and scoring all predict
    blockwise (see PREDICT_BLOCK_ROWS), on binned rows (`_binned_raw_prediction`).
    """

    def decision_function(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        # Threads over blocks, each walking its blocks with one OpenMP thread: the trees
        # are walked block by block, and with OpenMP inside each walk every one of the
        # (blocks x trees) calls ended in a barrier — on a busy machine, threads spinning
        # while they wait for a core.
        threads = _openmp_effective_n_threads()
        booster = self.estimator[-1] if isinstance(self.estimator, Pipeline) else self.estimator
        if threads > 1 and _binnable(booster):
            return _blockwise(_fast_decision(self.estimator, n_threads=1), X, workers=threads)
        return _blockwise(_fast_decision(self.estimator), X)

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        return _blockwise(self.estimator.predict_proba, X)


# Inputs of the logistic half of the model (`core_design`): defined for every customer of
# any purchase log, so the same model shape serves a bare log and the full warehouse.
CORE_INPUTS = [
    "bgnbd_p_alive",
    "bgnbd_expected_30d",
    "days_since_last_visit",
    "visit_days_all",
    "tenure_days",
    "spend_all",
    "avg_ticket",
    "visits_30",
    "visits_90",
    "visits_180",
    "recency_gap_ratio",
    "gap_mean",
    "last_gap",
]


def _log1p(values: pd.Series) -> np.ndarray:
    """log(1 + v) of a non-negative quantity; NaN (undefined) and negatives → 0."""
    v = np.nan_to_num(values.to_numpy(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return np.log1p(np.clip(v, 0.0, None))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.nan_to_num(np.asarray(p, np.float64), nan=0.5), 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def core_design(frame: pd.DataFrame) -> np.ndarray:
    """The logistic half's inputs: log-scaled, horizon-invariant history summaries.

    Log scales because revisit odds move with ratios of these (a tenth visit means less
    than a second); `gap_mean` missing (one visit day) is a flag, not a zero gap.
    """
    recency = frame["days_since_last_visit"]
    gap = frame["gap_mean"].to_numpy(np.float64)
    has_gap = np.isfinite(gap)
    columns = [
        _logit(frame["bgnbd_p_alive"].to_numpy(np.float64)),
        _log1p(frame["bgnbd_expected_30d"]),
        _log1p(recency),
        _log1p(frame["visit_days_all"] - 1.0),
        _log1p(frame["tenure_days"]),
        _log1p(frame["spend_all"]),
        _log1p(frame["avg_ticket"]),
        _log1p(frame["visits_30"]),
        _log1p(frame["visits_90"]),
        _log1p(frame["visits_180"]),
        np.nan_to_num(
            recency.to_numpy(np.float64) / np.maximum(frame["tenure_days"].to_numpy(float), 1.0)
        ),
        _log1p(frame["recency_gap_ratio"]),
        has_gap.astype(np.float64),
        _log1p(frame["gap_mean"]),
        _log1p(frame["last_gap"] / np.maximum(np.nan_to_num(gap, nan=1.0), 1.0)),
    ]
    return np.column_stack(columns)


class RangeClip(TransformerMixin, BaseEstimator):
    """Clips each column to the range seen in fit.

    The logistic is linear in its inputs: unclipped, it would carry its slopes past the
    oldest tenure or longest silence of the training cutoffs (the held-out customers are
    older than the training ones by construction) and its probabilities with them. Like a
    tree, it then holds its value at the edge of what it has seen.
    """

    def fit(self, X: np.ndarray, y: Any = None) -> RangeClip:
        self.low_ = np.min(X, axis=0)
        self.high_ = np.max(X, axis=0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.clip(X, self.low_, self.high_)


class StackedEstimator:
    """P(revisit) = σ(w0 + w1·boosting log-odds + w2·core logistic log-odds).

    `frozen` is the boosting pipeline (`BlockwiseFrozen`, reading `boost_features`),
    `core` the scaled logistic on `core_design`, `stack` the two-input logistic fitted on
    the tuning cutoff (it is also the calibration: a Platt scaling of the blend).
    """

    def __init__(
        self,
        frozen: BlockwiseFrozen,
        boost_features: list[str],
        core: Pipeline,
        stack: LogisticRegression,
    ) -> None:
        self.frozen = frozen
        self.boost_features = boost_features
        self.core = core
        self.stack = stack

    def margins(self, X: pd.DataFrame) -> np.ndarray:
        """Rows × 2: the boosting's and the core logistic's log-odds."""
        # Usually X holds exactly the boosting's columns: no 1M-row copy to slice them.
        same = list(X.columns) == self.boost_features
        boost = self.frozen.decision_function(X if same else X[self.boost_features])
        return np.column_stack([boost, self.core.decision_function(core_design(X))])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.stack.predict_proba(self.margins(X))


class TrainingError(ValueError):
    """The data cannot support training (too little history, one class only, …)."""


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of a training run; the defaults suit the 1M-customer ecosystem on 2 cores."""

    horizon_days: int = 30
    n_train_cutoffs: int = 4
    cutoff_step_days: int | None = None  # None: the horizon (non-overlapping label windows)
    # Training rows, sampled evenly across the training cutoffs (see _sample_per_cutoff).
    max_train_rows: int = 500_000
    tune_rows: int = 200_000  # tuning-cutoff rows for early stopping and calibration
    max_iter: int = 300
    n_iter_no_change: int = 15
    param_grid: tuple[dict[str, Any], ...] = DEFAULT_GRID
    calibration: str = "sigmoid"  # monotone, so calibration never changes the ranking
    # Stack the boosting with the core logistic (see the module docstring); False: the
    # boosting alone, calibrated by `calibration`.
    stack_core: bool = True
    reason_features: int = 8
    min_examples_per_cutoff: int = 20
    # Short histories (see `choose_label_window`): when the horizon's own labels do not
    # fit before the evaluation cutoff, the label windows tried instead, longest first,
    # and the share of the evaluation cutoff's customers a training cutoff must already
    # have for a window to count as fitting (a cutoff holding only the first days'
    # customers teaches little about customers months old).
    shorter_label_windows: tuple[int, ...] = (365, 273, 180, 120, 90, 60, 45, 30, 21, 14, 7)
    min_train_share: float = 0.25
    random_state: int = 0
    # OpenMP threads for fitting; None = all cores. On a machine busy with other work,
    # 1 can be many times faster than 2 (OpenMP threads spin while waiting for a core).
    threads: int | None = None


@dataclass(frozen=True)
class CutoffPlan:
    """Which cutoffs play which role."""

    train: list[pd.Timestamp]
    tuning: pd.Timestamp
    evaluation: pd.Timestamp

    def as_dict(self) -> dict[str, Any]:
        return {
            "train": [f"{c:%Y-%m-%d}" for c in self.train],
            "tuning": f"{self.tuning:%Y-%m-%d}",
            "evaluation": f"{self.evaluation:%Y-%m-%d}",
        }


def plan_cutoffs(evaluation: dt.date | str | pd.Timestamp, config: TrainConfig) -> CutoffPlan:
    """The rolling cutoffs for a held-out evaluation cutoff (see the module docstring)."""
    e = as_cutoff(evaluation)
    h = pd.Timedelta(days=config.horizon_days)
    step = pd.Timedelta(days=config.cutoff_step_days or config.horizon_days)
    tuning = e - h
    train = [tuning - step * k for k in range(config.n_train_cutoffs, 0, -1)]
    return CutoffPlan(train=train, tuning=tuning, evaluation=e)


def first_visits(client: Client) -> np.ndarray:
    """First visit time (ns since the epoch, UTC) of every (business, customer)."""
    table = client.query_arrow(
        "SELECT toInt64(toUnixTimestamp64Milli(min(visited_at))) AS first "
        "FROM marts.fct_visits FINAL GROUP BY business_id, customer_id"
    )
    return np.sort(table.column("first").to_numpy().astype(np.int64) * 1_000_000)


def _population(first: np.ndarray, cutoff: pd.Timestamp) -> int:
    return int(np.searchsorted(first, cutoff.value, side="left"))


def choose_label_window(
    first: np.ndarray, evaluation: dt.date | str | pd.Timestamp, config: TrainConfig
) -> tuple[int, dict[str, Any]]:
    """The label window to train on for `config.horizon_days` at `evaluation`.

    The horizon itself when it fits: some training cutoff (labels ending by the tuning
    cutoff) holds at least `min_examples_per_cutoff` customers and `min_train_share` of
    the evaluation cutoff's. Otherwise the longest of `shorter_label_windows` that fits;
    its predictions are carried to the horizon by `ml.baselines.transfer_horizon`.
    `first` is `first_visits`. Raises TrainingError when no window fits.
    """
    e = as_cutoff(evaluation)
    needed = max(config.min_examples_per_cutoff, config.min_train_share * _population(first, e))
    tried = []
    candidates = [config.horizon_days] + [
        w for w in config.shorter_label_windows if w < config.horizon_days
    ]
    for window in candidates:
        plan = plan_cutoffs(e, replace(config, horizon_days=window))
        largest = max(_population(first, c) for c in plan.train)
        tried.append({"label_window_days": window, "largest_training_cutoff": largest})
        if largest >= needed and _population(first, plan.tuning) >= config.min_examples_per_cutoff:
            return window, {"windows_tried": tried, "customers_needed": int(np.ceil(needed))}
    raise TrainingError(
        f"No training cutoff before {e:%Y-%m-%d} has at least {int(np.ceil(needed))} customers "
        f"with a visit, even for a {candidates[-1]}-day label window: the history is too short."
    )


def _encoder(numeric: list[str]) -> ColumnTransformer:
    return ColumnTransformer(
        [
            (
                "categorical",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                    encoded_missing_value=np.nan,
                ),
                CATEGORICAL_FEATURES,
            ),
            ("numeric", "passthrough", numeric),
        ],
        verbose_feature_names_out=False,
    )


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    return frame if len(frame) <= rows else frame.sample(n=rows, random_state=seed)


def _sample_per_cutoff(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """At most `rows` rows, the same share of every cutoff (stratified by cutoff).

    Every training cutoff keeps its weight in the fit, and within a cutoff the sample is
    uniform, so the class balance and the mix of customers of each cutoff are kept.
    """
    if len(frame) <= rows:
        return frame
    return frame.groupby("cutoff", group_keys=False).sample(
        frac=rows / len(frame), random_state=seed
    )


@dataclass
class RevisitModel:
    """A fitted, calibrated revisit model and what scoring needs to use it."""

    estimator: StackedEstimator | CalibratedClassifierCV
    horizon_days: int
    features: list[str]
    reference: dict[str, Any]
    reason_features: list[str]
    pd_curves: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Days of the training labels when the history was too short for labels of the
    # horizon (None: the horizon's own); predictions are then carried to the horizon.
    label_window_days: int | None = None

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """P(revisit within the horizon) for feature rows (`ml.features.build_features`)."""
        if frame.empty:
            return np.zeros(0)
        p = self.estimator.predict_proba(frame[self.features])[:, 1]
        window = getattr(self, "label_window_days", None)  # models pickled before it
        if window is None or window == self.horizon_days:
            return p
        return transfer_horizon(frame, p, window, self.horizon_days)

    def occlusion_effects(self, frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
        """Per row and feature: p − p(with that feature set to its reference value).

        Exact for the model but one row per row and feature: used on samples only. The
        occluded copies are stacked into one prediction call, since per-call overhead
        (per tree) dominates on small frames.
        """
        rows = frame[self.features].reset_index(drop=True)
        copies = []
        for name in names:
            changed = rows.copy()
            changed[name] = pd.Series([self.reference[name]] * len(rows), dtype=rows[name].dtype)
            copies.append(changed)
        p = self.estimator.predict_proba(pd.concat([rows, *copies], ignore_index=True))[:, 1]
        p = p.reshape(len(names) + 1, len(rows))
        return pd.DataFrame((p[0] - p[1:]).T, columns=list(names), index=frame.index)

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per row and reason feature: PD(value) − PD(reference value).

        PD is the feature's partial dependence (the mean prediction over a training sample
        with the feature set to a value), tabulated at fit time, so scoring a million rows
        needs lookups, not extra model predictions. Positive = raises the probability
        compared with a typical customer.
        """
        out = {}
        for name in self.reason_features:
            curve = self.pd_curves[name]
            if "map" in curve:
                mapped = frame[name].astype(str).map(curve["map"])
                values = mapped.fillna(curve["ref"]).to_numpy(float)
            else:
                x = frame[name].to_numpy(float)
                values = np.interp(x, curve["grid"], curve["values"])
                nan_value = curve["ref"] if curve["nan"] is None else curve["nan"]
                values = np.where(np.isnan(x), nan_value, values)
            out[name] = values - curve["ref"]
        return pd.DataFrame(out, index=frame.index)

    def reason_codes(
        self, frame: pd.DataFrame, top: int = 3, min_effect: float = 0.005
    ) -> pa.ListArray:
        """Top contributing features per row as `feature:+` / `feature:-` strings.

        An Arrow list array (one list per row, largest effect first; effects below
        `min_effect` left out), built without a per-row Python loop: the codes come from a
        vocabulary of two strings per reason feature, indexed by the top-k positions.
        """
        values = self.contributions(frame).to_numpy() if len(frame) else np.zeros((0, 0))
        top = min(top, values.shape[1])
        order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :top]
        chosen = np.take_along_axis(values, order, axis=1)
        keep = np.abs(chosen) >= min_effect  # sorted by |effect|: a prefix of each row
        vocabulary = np.array(
            [f"{name}:{sign}" for name in self.reason_features for sign in "-+"], dtype=object
        )
        codes = vocabulary[(2 * order + (chosen > 0))[keep]]
        offsets = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(codes, type=pa.string()))


def _reference_values(train: pd.DataFrame) -> dict[str, Any]:
    ref: dict[str, Any] = {}
    for name in NUMERIC_FEATURES:
        values = train[name].to_numpy(float)
        # Mostly undefined (no booking, no messages…): the typical customer has no value.
        typical_missing = np.isnan(values).mean() > 0.5 if len(values) else True
        ref[name] = float("nan") if typical_missing else float(np.nanmedian(values))
    for name in CATEGORICAL_FEATURES:
        ref[name] = str(train[name].mode().iloc[0]) if len(train) else ""
    return ref


def _partial_dependence(model: RevisitModel, sample: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Partial-dependence tables of the reason features (see RevisitModel.contributions)."""
    curves: dict[str, dict[str, Any]] = {}
    rows = sample[model.features].reset_index(drop=True)

    def mean_prediction(name: str, values: list[Any]) -> np.ndarray:
        stacked = pd.concat([rows] * len(values), ignore_index=True)
        stacked[name] = np.repeat(np.array(values, dtype=object), len(rows))
        if name not in CATEGORICAL_FEATURES:
            stacked[name] = stacked[name].astype(float)
        p = model.estimator.predict_proba(stacked)[:, 1]
        return p.reshape(len(values), len(rows)).mean(axis=1)

    for name in model.reason_features:
        ref = model.reference[name]
        if name in CATEGORICAL_FEATURES:
            cats = sorted({*rows[name].astype(str).unique(), str(ref)})
            values = mean_prediction(name, cats)
            table = dict(zip(cats, values.tolist(), strict=True))
            curves[name] = {"map": table, "ref": table[str(ref)]}
            continue
        x = rows[name].to_numpy(float)
        finite = x[np.isfinite(x)]
        grid = np.unique(np.quantile(finite, np.linspace(0, 1, 17))) if len(finite) else []
        points = [*map(float, grid), float("nan")]
        values = mean_prediction(name, points)
        ref_value = float(np.interp(ref, grid, values[:-1])) if len(grid) else float(values[-1])
        curves[name] = {
            "grid": [float(g) for g in grid],
            "values": values[:-1].tolist(),
            "nan": float(values[-1]) if np.isnan(x).any() else None,
            "ref": ref_value if np.isfinite(ref) else float(values[-1]),
        }
    return curves


def fit_model(
    train: pd.DataFrame, tuning: pd.DataFrame, config: TrainConfig
) -> tuple[RevisitModel, dict[str, Any]]:
    """Tune on `tuning` (grid × number of trees by log loss), fit, stack and calibrate on
    `tuning` (see the module docstring)."""
    for name, part in (("training", train), ("tuning", tuning)):
        if part[LABEL].nunique() < 2:
            raise TrainingError(
                f"The {name} examples have a single outcome ({len(part)} rows); "
                "more history or a different horizon is needed."
            )
    seed = config.random_state
    # Features never defined in training (no messages, no birthdays, …) carry nothing and
    # break the binning of gradient boosting: leave them out of this model.
    numeric = [n for n in NUMERIC_FEATURES if np.isfinite(train[n].to_numpy(float)).any()]
    features = CATEGORICAL_FEATURES + numeric
    fit_rows = _sample_per_cutoff(train, config.max_train_rows, seed + 2)
    y_fit = fit_rows[LABEL].to_numpy(int)
    valid = _sample(tuning, config.tune_rows, seed + 1)
    encoder = _encoder(numeric).fit(fit_rows[features])
    x_fit = encoder.transform(fit_rows[features])
    x_valid = encoder.transform(valid[features])
    y_valid = valid[LABEL].to_numpy(int)
    mask = [True] * len(CATEGORICAL_FEATURES) + [False] * len(numeric)
    # One fit per candidate on the training rows, stopped early on the tuning cutoff's
    # log loss: the number of trees is tuned on a later period (time-based validation,
    # never a random split), and the winning fit is the model — no refit.
    trials, boosters = [], []
    for i, params in enumerate(config.param_grid):
        booster = HistGradientBoostingClassifier(
            max_iter=config.max_iter,
            early_stopping=True,
            scoring="loss",
            n_iter_no_change=config.n_iter_no_change,
            categorical_features=mask,
            random_state=seed,
            **params,
        )
        booster.fit(x_fit, y_fit, X_val=x_valid, y_val=y_valid)
        p_valid = _positive_probability(booster, x_valid)
        loss = log_loss(y_valid, np.clip(p_valid, 1e-6, 1 - 1e-6), labels=[0, 1])
        trials.append(
            {"grid_index": i, "params": params, "n_iter": booster.n_iter_, "log_loss": loss}
        )
        boosters.append(booster)
    best = min(range(len(trials)), key=lambda i: trials[i]["log_loss"])
    chosen = trials[best]
    pipe = Pipeline([("encode", encoder), ("boost", boosters[best])])
    stack_info: dict[str, Any] = {}
    if config.stack_core:
        # The logistic on the training sample and the tuning sample (see the module
        # docstring); the stack (three parameters) on the tuning sample.
        core_rows = pd.concat([fit_rows, valid], ignore_index=True)
        core = Pipeline(
            [
                ("clip", RangeClip()),
                ("scale", StandardScaler()),
                ("logistic", LogisticRegression(max_iter=1000)),
            ]
        )
        core.fit(core_design(core_rows), core_rows[LABEL].to_numpy(int))
        estimator: StackedEstimator | CalibratedClassifierCV = StackedEstimator(
            BlockwiseFrozen(pipe), features, core, LogisticRegression(C=1e4)
        )
        estimator.stack.fit(estimator.margins(valid), y_valid)
        weights = estimator.stack.coef_[0]
        stack_info = {
            "core_rows": len(core_rows),
            "weights": {
                "boosting": round(float(weights[0]), 4),
                "core": round(float(weights[1]), 4),
            },
        }
        # The core's inputs are always defined, but keep them in the model's columns in
        # case a feature the boosting left out is one of them.
        features = features + [n for n in CORE_INPUTS if n not in features]
    else:
        # Calibrated on the tuning sample (`tune_rows` rows of the tuning cutoff): a
        # sigmoid has two parameters, which 200k rows pin down as well as all of them.
        estimator = CalibratedClassifierCV(BlockwiseFrozen(pipe), method=config.calibration)
        estimator.fit(valid[features], y_valid)

    reference = _reference_values(fit_rows)
    model = RevisitModel(estimator, config.horizon_days, features, reference, [])
    # Reason features: the ones whose occlusion moves predictions most on tuning rows.
    sample = _sample(tuning, 3_000, seed + 3)
    effect = model.occlusion_effects(sample, features).abs().mean().sort_values(ascending=False)
    model.reason_features = [str(n) for n in effect.index[: config.reason_features]]
    model.pd_curves = _partial_dependence(model, _sample(fit_rows, 1_000, seed + 4))
    info = {
        "trials": trials,
        "chosen": chosen,
        "train_rows_used": len(fit_rows),
        "stack": stack_info,
        "features_left_out": [n for n in NUMERIC_FEATURES if n not in numeric],
        "feature_effects": {str(k): round(float(v), 5) for k, v in effect.items()},
    }
    return model, info


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of the training examples (ids, features, labels), order-independent."""
    cols = ID_COLUMNS + FEATURES + [LABEL]
    ordered = frame[cols].sort_values(["cutoff", "business_id", "customer_id"])
    hashed = pd.util.hash_pandas_object(ordered, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


@dataclass
class TrainingRun:
    """The outcome of `train_and_evaluate`."""

    model: RevisitModel
    plan: CutoffPlan
    config: TrainConfig
    metrics: dict[str, dict[str, float]]  # "model" and each baseline → score_metrics
    tuning: dict[str, Any]
    data_fingerprint: str
    rows: dict[str, int]
    evaluation: pd.DataFrame  # held-out ids, label and every score column
    evaluation_features: pd.DataFrame  # held-out feature rows (re-scored by other models)
    seconds: dict[str, float] = field(default_factory=dict)
    # How the horizon was met (see `choose_label_window`): label window, windows tried.
    horizon_strategy: dict[str, Any] = field(default_factory=dict)
    # Each baseline fitted on the training rows: the registry's fallback when the model
    # itself is refused (see `ml.registry.QualityGate`).
    baselines: dict[str, Any] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        """JSON-ready summary: cutoffs, sizes, metrics of the model and each baseline."""
        return {
            "horizon_days": self.config.horizon_days,
            **self.horizon_strategy,
            "cutoffs": self.plan.as_dict(),
            "rows": self.rows,
            "model": self.metrics["model"],
            "baselines": {k: v for k, v in self.metrics.items() if k != "model"},
            "tuning": self.tuning["chosen"],
            "stack": self.tuning.get("stack", {}),
            "data_fingerprint": self.data_fingerprint,
            "seconds": self.seconds,
        }


def train_and_evaluate(
    client: Client,
    evaluation_cutoff: dt.date | str | pd.Timestamp,
    config: TrainConfig | None = None,
) -> TrainingRun:
    """Build features for the plan's cutoffs, fit and calibrate, score model and baselines.

    The data must cover `evaluation_cutoff + horizon` for the held-out labels. Training
    cutoffs with fewer than `min_examples_per_cutoff` examples (before the data starts)
    are dropped; at least one must remain.
    """
    config = config or TrainConfig()
    horizon = config.horizon_days
    t0 = time.perf_counter()
    window, tried = choose_label_window(first_visits(client), evaluation_cutoff, config)
    window_config = replace(config, horizon_days=window)
    plan = plan_cutoffs(evaluation_cutoff, window_config)
    if window == horizon:
        frame = build_features(client, [*plan.train, plan.tuning, plan.evaluation], horizon)
        strategy = {"strategy": "labels of the horizon itself"}
    else:
        # Training and tuning labels of the shorter window; held-out labels of the horizon.
        frame = pd.concat(
            [
                build_features(client, [*plan.train, plan.tuning], window),
                build_features(client, [plan.evaluation], horizon),
            ],
            ignore_index=True,
        )
        strategy = {
            "strategy": (
                f"history too short for {horizon}-day labels before the cutoff: trained on "
                f"{window}-day labels, carried to {horizon} days by the BG/NBD odds ratio "
                "(logit p_H = logit p_L + logit bg_H - logit bg_L)"
            )
        }
    strategy = {
        "requested_horizon_days": horizon,
        "label_window_days": window,
        **strategy,
        **tried,
    }
    t_features = time.perf_counter() - t0
    counts = frame.groupby("cutoff").size()
    kept = [c for c in plan.train if counts.get(c, 0) >= config.min_examples_per_cutoff]
    if not kept:
        raise TrainingError(
            f"No training cutoff before {plan.tuning:%Y-%m-%d} has at least "
            f"{config.min_examples_per_cutoff} customers with a visit: the history is too short "
            f"for horizon {horizon} days."
        )
    plan = CutoffPlan(train=kept, tuning=plan.tuning, evaluation=plan.evaluation)
    train = frame[frame["cutoff"].isin(kept)].reset_index(drop=True)
    tuning = frame[frame["cutoff"] == plan.tuning].reset_index(drop=True)
    held_out = frame[frame["cutoff"] == plan.evaluation].reset_index(drop=True)
    if held_out.empty:
        raise TrainingError(f"No customer has a visit before {plan.evaluation:%Y-%m-%d}.")

    with threadpool_limits(limits=config.threads):
        t1 = time.perf_counter()
        model, tuning_info = fit_model(train, tuning, window_config)
        model.horizon_days = horizon
        model.label_window_days = None if window == horizon else window
        t_fit = time.perf_counter() - t1
        t2 = time.perf_counter()
        evaluation = held_out[[*ID_COLUMNS, LABEL]].copy()
        evaluation["model"] = model.predict(held_out)
    y = held_out[LABEL].to_numpy(int)
    metrics = {"model": score_metrics(y, evaluation["model"])}
    baselines = {name: baseline.fit(train) for name, baseline in all_baselines().items()}
    for name, baseline in baselines.items():
        if window != horizon and hasattr(baseline, "label_window_days"):
            baseline.label_window_days = window  # learnt on window labels, as the model
        evaluation[name] = baseline.predict(held_out, horizon)
        metrics[name] = score_metrics(y, evaluation[name])
    t_eval = time.perf_counter() - t2
    return TrainingRun(
        model=model,
        plan=plan,
        config=config,
        metrics=metrics,
        tuning=tuning_info,
        data_fingerprint=fingerprint(train),
        rows={"train": len(train), "tuning": len(tuning), "evaluation": len(held_out)},
        evaluation=evaluation,
        evaluation_features=held_out,
        baselines=baselines,
        horizon_strategy=strategy,
        seconds={
            "features": round(t_features, 2),
            "fit": round(t_fit, 2),
            "evaluate": round(t_eval, 2),
        },
    )
