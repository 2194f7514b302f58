"""Uplift: who a message brings back, not who comes back anyway.

Every trigger send has a random control group: `marts.fct_message_sends.holdout` rows
were planned like the others and never sent (activation/planner.py draws them by
`cityHash64(campaign_id, customer_id) % 100 < holdout_pct`). That makes each trigger a
randomized experiment, and an uplift model per trigger estimates, for one customer,

    uplift = P(revisit within 30 days | sent) − P(revisit within 30 days | not sent)

Model: a two-model (T-)learner — one gradient-boosted classifier on the sent messages,
one on the holdout — over a few point-in-time features of the customer as of the send
(`SEND_FEATURES`, from `marts.fct_visits` and `marts.fct_appointments` before
`planned_at`; the label is the message funnel's: a completed visit in
(planned_at, planned_at + 30 days]). By default one T-learner is fit on every trigger's
sends with the trigger as a feature (one-hot) and scores each trigger separately: the
holdout arm is a tenth of the sends, and per trigger it is too small — on the 20k
ecosystem separate per-trigger T-learners ranked the true uplift of birthday and
personal-offer messages no better than chance, the pooled one clearly better
(BENCHMARKS.md, uplift). `per_trigger=True` fits one T-learner per trigger where both
arms have at least `min_arm` rows (the others fall back to the pooled model).

Evaluation (`qini_curve`, `qini_coefficient`, `gain_at_budget`): the Qini curve on
observed outcomes (treated revisits minus control revisits scaled to the treated count,
customers taken in order of the score), and — where the true per-customer uplift is
known (the synthetic ecosystem's truth files) — the cumulative true uplift of the
customers a ranking picks, normalised between a random pick (0) and the perfect one (1).

Output: `ml.uplift_scores` (`score_uplift`), one row per (business_id, customer_id,
trigger) per scoring run; the planner reads the latest row per key for triggers with
`uplift_targeting` (send only where uplift × value per revisit > message cost).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from clickhouse_connect.driver.client import Client
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

UPLIFT_TABLE = "ml.uplift_scores"
WINDOW_DAYS = 30
MIN_ARM = 300  # rows per arm (sent, holdout) a T-learner is fit on

UPLIFT_DDL = f"""
CREATE TABLE IF NOT EXISTS {UPLIFT_TABLE} (
    business_id String,
    customer_id String,
    trigger LowCardinality(String),
    scored_at DateTime64(3, 'UTC'),
    model_version String,
    p_sent Float64,
    p_not_sent Float64,
    uplift Float64,
    _inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree
ORDER BY (business_id, customer_id, trigger, scored_at)
"""

SEND_FEATURES = [
    "visits_all",
    "visits_90",
    "visits_365",
    "recency_days",
    "tenure_days",
    "mean_gap_days",
    "overdue_ratio",
    "avg_amount",
    "booked_30d",
]

# Points are (key, business_id, customer_id, trigger, holdout, at): a send, or a customer
# to score at `at`. Features use only what happened before `at`.
_FEATURES_SQL = """
WITH
points AS ({points}),
v AS (
    SELECT business_id, customer_id, visited_at, toFloat64(amount) AS amount
    FROM marts.fct_visits FINAL
    WHERE (business_id, customer_id) IN (SELECT business_id, customer_id FROM points)
),
a AS (
    -- Bookings made before `at` for the next 30 days and not cancelled before it.
    SELECT business_id, customer_id, created_at, scheduled_at, status, updated_at
    FROM marts.fct_appointments
    WHERE (business_id, customer_id) IN (SELECT business_id, customer_id FROM points)
),
visit_stats AS (
    SELECT
        p.key AS key,
        countIf(v.visited_at < p.at) AS visits_all,
        countIf(v.visited_at < p.at AND v.visited_at >= p.at - INTERVAL 90 DAY) AS visits_90,
        countIf(v.visited_at < p.at AND v.visited_at >= p.at - INTERVAL 365 DAY) AS visits_365,
        dateDiff('second', maxIf(v.visited_at, v.visited_at < p.at), any(p.at)) / 86400.
            AS recency,
        dateDiff('second', minIf(v.visited_at, v.visited_at < p.at), any(p.at)) / 86400.
            AS tenure,
        avgIf(v.amount, v.visited_at < p.at) AS avg_amount,
        countIf(v.visited_at > p.at
            AND v.visited_at <= p.at + INTERVAL {window} DAY) > 0 AS revisited
    FROM points AS p
    LEFT JOIN v ON v.business_id = p.business_id AND v.customer_id = p.customer_id
    GROUP BY p.key
),
booked AS (
    SELECT p.key AS key,
        countIf(a.created_at < p.at AND a.scheduled_at > p.at
            AND a.scheduled_at <= p.at + INTERVAL {window} DAY
            AND NOT (a.status = 'cancelled' AND a.updated_at < p.at)) AS booked_30d
    FROM points AS p
    INNER JOIN a ON a.business_id = p.business_id AND a.customer_id = p.customer_id
    GROUP BY p.key
)
SELECT
    p.key AS key, p.business_id AS business_id, p.customer_id AS customer_id,
    p.trigger AS trigger, p.holdout AS holdout, p.at AS at,
    toFloat64(s.visits_all) AS visits_all,
    toFloat64(s.visits_90) AS visits_90,
    toFloat64(s.visits_365) AS visits_365,
    toFloat64(ifNull(if(s.visits_all > 0, s.recency, nan), nan)) AS recency_days,
    toFloat64(ifNull(if(s.visits_all > 0, s.tenure, nan), nan)) AS tenure_days,
    if(s.visits_all > 1, (tenure_days - recency_days) / (s.visits_all - 1), nan)
        AS mean_gap_days,
    if(s.visits_all > 1, recency_days / greatest(mean_gap_days, 1.), nan) AS overdue_ratio,
    toFloat64(ifNull(if(s.visits_all > 0, s.avg_amount, nan), nan)) AS avg_amount,
    toFloat64(ifNull(b.booked_30d, 0)) AS booked_30d,
    toUInt8(s.revisited) AS revisited
FROM points AS p
INNER JOIN visit_stats AS s ON s.key = p.key
LEFT JOIN booked AS b ON b.key = p.key
ORDER BY key
"""


def send_frame(
    client: Client,
    *,
    until: dt.datetime | None = None,
    since: dt.datetime | None = None,
    triggers: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per trigger send (sent or holdout) planned in [since, until): the
    SEND_FEATURES as of `planned_at`, `holdout` and the 30-day `revisited` label.

    A sent message counts only if it was sent (`sent_at` set): a planned message that
    never left is neither treated nor control. Labels of sends less than 30 days before
    the last visit in the warehouse are incomplete: pass `until` ≤ that − 30 days.
    """
    where = ["(holdout OR sent_at IS NOT NULL)"]
    params: dict[str, object] = {}
    if until is not None:
        where.append("planned_at < {until:DateTime64(3, 'UTC')}")
        params["until"] = until
    if since is not None:
        where.append("planned_at >= {since:DateTime64(3, 'UTC')}")
        params["since"] = since
    if triggers:
        where.append("trigger IN {triggers:Array(String)}")
        params["triggers"] = list(triggers)
    points = (
        "SELECT message_id AS key, business_id, customer_id, trigger, holdout, "
        f"planned_at AS at FROM marts.fct_message_sends WHERE {' AND '.join(where)}"
    )
    sql = _FEATURES_SQL.format(points=points, window=WINDOW_DAYS)
    # join_use_nulls: a send to a customer without visits must count none (not one visit
    # at the epoch, the default value a non-matching LEFT JOIN row would carry).
    return client.query_df(sql, parameters=params, settings={"join_use_nulls": 1})


def customer_frame(client: Client, at: dt.datetime) -> pd.DataFrame:
    """SEND_FEATURES of every customer with a completed visit before `at`, as of `at`
    (the rows `score_uplift` scores)."""
    points = (
        "SELECT concat(business_id, '\\x1F', customer_id) AS key, business_id, customer_id, "
        "'' AS trigger, false AS holdout, {at:DateTime64(3, 'UTC')} AS at "
        "FROM marts.fct_visits WHERE visited_at < {at:DateTime64(3, 'UTC')} "
        "GROUP BY business_id, customer_id"
    )
    sql = _FEATURES_SQL.format(points=points, window=WINDOW_DAYS)
    return client.query_df(sql, parameters={"at": at}, settings={"join_use_nulls": 1})


# --- the model -------------------------------------------------------------------------


def _classifier(seed: int) -> HistGradientBoostingClassifier:
    # Shallow and strongly regularised: the holdout arm is a tenth of the sends.
    return HistGradientBoostingClassifier(
        max_iter=100,
        learning_rate=0.05,
        max_leaf_nodes=8,
        min_samples_leaf=40,
        l2_regularization=1.0,
        random_state=seed,
    )


@dataclass
class ArmModels:
    """The two response models of one T-learner."""

    sent: HistGradientBoostingClassifier
    not_sent: HistGradientBoostingClassifier
    n_sent: int
    n_holdout: int


@dataclass
class UpliftModel:
    """T-learners per trigger plus a pooled one (trigger one-hot as extra features)."""

    triggers: list[str]
    per_trigger: dict[str, ArmModels]
    pooled: ArmModels | None
    version: str
    trained_until: str
    seconds: float = 0.0
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    threads: int | None = None  # OpenMP threads for predicting too

    def _pooled_x(self, frame: pd.DataFrame, trigger: str) -> np.ndarray:
        onehot = np.tile([float(t == trigger) for t in self.triggers], (len(frame), 1))
        return np.hstack([frame[SEND_FEATURES].to_numpy(float), onehot])

    def arms(self, frame: pd.DataFrame, trigger: str) -> tuple[np.ndarray, np.ndarray]:
        """(P(revisit | sent), P(revisit | not sent)) of each row for `trigger`."""
        models = self.per_trigger.get(trigger)
        if models is not None:
            x = frame[SEND_FEATURES].to_numpy(float)
        elif self.pooled is not None and trigger in self.triggers:
            models, x = self.pooled, self._pooled_x(frame, trigger)
        else:
            raise KeyError(f"no uplift model for trigger {trigger!r}; known: {self.triggers}")
        with threadpool_limits(limits=self.threads):
            return models.sent.predict_proba(x)[:, 1], models.not_sent.predict_proba(x)[:, 1]

    def predict(self, frame: pd.DataFrame, trigger: str) -> np.ndarray:
        """Expected incremental revisits (within 30 days) of sending `trigger` to each row."""
        p1, p0 = self.arms(frame, trigger)
        return p1 - p0


def _fit_arms(x: np.ndarray, y: np.ndarray, treated: np.ndarray, seed: int) -> ArmModels:
    sent = _classifier(seed).fit(x[treated], y[treated])
    not_sent = _classifier(seed + 1).fit(x[~treated], y[~treated])
    return ArmModels(sent, not_sent, int(treated.sum()), int((~treated).sum()))


def _fittable(y: np.ndarray, treated: np.ndarray, min_arm: int) -> bool:
    # Each arm needs enough rows and both outcomes.
    return all(arm.sum() >= min_arm and 0 < y[arm].sum() < arm.sum() for arm in (treated, ~treated))


def fit_uplift(
    frame: pd.DataFrame,
    *,
    min_arm: int = MIN_ARM,
    seed: int = 0,
    version: str | None = None,
    threads: int | None = None,
    per_trigger: bool = False,
) -> UpliftModel:
    """Fit the T-learners on `send_frame` rows (see the module docstring). `threads`:
    OpenMP threads for fitting (None = all cores; on a busy machine 1 is often much
    faster, as spinning OpenMP threads wait for a core)."""
    with threadpool_limits(limits=threads):
        model = _fit_uplift(
            frame, min_arm=min_arm, seed=seed, version=version, separate=per_trigger
        )
    model.threads = threads
    return model


def _fit_uplift(
    frame: pd.DataFrame, *, min_arm: int, seed: int, version: str | None, separate: bool
) -> UpliftModel:
    started = time.perf_counter()
    triggers = sorted(frame["trigger"].unique())
    y_all = frame["revisited"].to_numpy(int)
    treated_all = ~frame["holdout"].to_numpy(bool)
    per_trigger: dict[str, ArmModels] = {}
    counts: dict[str, dict[str, int]] = {}
    for k, trigger in enumerate(triggers):
        sel = (frame["trigger"] == trigger).to_numpy()
        y, treated = y_all[sel], treated_all[sel]
        counts[trigger] = {"sent": int(treated.sum()), "holdout": int((~treated).sum())}
        if separate and _fittable(y, treated, min_arm):
            x = frame.loc[sel, SEND_FEATURES].to_numpy(float)
            per_trigger[trigger] = _fit_arms(x, y, treated, seed + 2 * k)
    pooled = None
    model = UpliftModel(triggers, per_trigger, None, version or "", "", 0.0, counts)
    if len(per_trigger) < len(triggers) and _fittable(y_all, treated_all, min_arm):
        x = np.vstack([model._pooled_x(frame[frame["trigger"] == t], t) for t in triggers])
        order = np.concatenate([np.flatnonzero(frame["trigger"] == t) for t in triggers])
        pooled = _fit_arms(x, y_all[order], treated_all[order], seed + 1000)
    model.pooled = pooled
    until = pd.to_datetime(frame["at"]).max() if len(frame) else None
    model.trained_until = "" if until is None else str(until)
    model.version = version or f"uplift-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S}"
    model.seconds = time.perf_counter() - started
    return model


# --- evaluation ------------------------------------------------------------------------


def qini_curve(
    y: np.ndarray, treated: np.ndarray, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(share of rows targeted, Qini value) after each row, best score first.

    Qini(k) = treated revisits − control revisits × treated count / control count, over
    the first k rows (0 while either arm is empty): the incremental revisits the top k
    would have brought, estimated from the randomized holdout.
    """
    y, t = np.asarray(y, float), np.asarray(treated, bool)
    order = np.argsort(-np.asarray(score, float), kind="stable")
    y, t = y[order], t[order]
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    y_t, y_c = np.cumsum(y * t), np.cumsum(y * ~t)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(n_c > 0, y_t - y_c * n_t / np.maximum(n_c, 1), 0.0)
    share = np.arange(1, len(y) + 1) / len(y)
    return np.concatenate([[0.0], share]), np.concatenate([[0.0], q])


def qini_coefficient(y: np.ndarray, treated: np.ndarray, score: np.ndarray) -> float:
    """Area between the Qini curve and the random-targeting line, per row targeted
    (> 0: the score ranks incremental revisits better than chance)."""
    share, q = qini_curve(y, treated, score)
    random_line = share * q[-1]
    return float(np.trapezoid(q - random_line, share) / len(y))


def gain_at_budget(true_uplift: np.ndarray, score: np.ndarray, budget: int) -> float:
    """True incremental revisits of messaging the `budget` rows with the highest score."""
    order = np.argsort(-np.asarray(score, float), kind="stable")[:budget]
    return float(np.asarray(true_uplift, float)[order].sum())


def normalized_truth_auuc(true_uplift: np.ndarray, score: np.ndarray) -> float:
    """Area under the cumulative true-uplift curve of a ranking, scaled so that a random
    order scores 0 and the order by true uplift 1."""
    tau = np.asarray(true_uplift, float)
    n = len(tau)

    def area(order: np.ndarray) -> float:
        return float(np.cumsum(tau[order]).sum() / n)

    model = area(np.argsort(-np.asarray(score, float), kind="stable"))
    best = area(np.argsort(-tau, kind="stable"))
    rand = tau.sum() * (n + 1) / 2 / n
    return (model - rand) / (best - rand) if best != rand else 0.0


class NoUpliftData(ValueError):
    """The warehouse holds nothing an uplift model can learn from (no visits, or no trigger
    sends with both a sent and a holdout arm)."""


def train_and_report(
    client: Client, *, eval_days: int = 60, budget: float = 0.25, threads: int | None = None
) -> tuple[UpliftModel, dict]:
    """Fit the uplift model on the warehouse's trigger sends and report it on the newest
    labelled ones: `(model, report)`.

    Labels need `WINDOW_DAYS` after a send, so the sends of the last `eval_days` days
    that have them are the report's and the model learns from those before (with a gap
    of `WINDOW_DAYS`, so no training label overlaps a reported send). Per trigger the
    report gives the train counts, the observed incremental revisit rate, the Qini
    coefficient and the incremental revisits at a `budget` share of the sends: picked by
    uplift, by P(revisit | sent), and `send_to_all` (sending to everyone, prorated to the
    budget — what a random pick of that size yields). Raises `NoUpliftData`.
    """
    exists = client.query("EXISTS TABLE marts.fct_visits").result_rows[0][0]
    last = exists and client.query("SELECT max(visited_at) FROM marts.fct_visits").result_rows[0][0]
    if not last or last.year < 1971:
        raise NoUpliftData("marts.fct_visits is empty: load data and run dbt first")
    last = last.replace(tzinfo=dt.UTC) if last.tzinfo is None else last
    labelled = last - dt.timedelta(days=WINDOW_DAYS)
    split = labelled - dt.timedelta(days=eval_days)
    trained_before = split - dt.timedelta(days=WINDOW_DAYS)
    train = send_frame(client, until=trained_before)
    test = send_frame(client, since=split, until=labelled)
    if train.empty or train.holdout.all() or not train.holdout.any():
        raise NoUpliftData(
            f"no trigger sends before {trained_before:%Y-%m-%d} with both sent and holdout "
            "rows to learn from"
        )
    model = fit_uplift(train, threads=threads)
    if model.pooled is None and not model.per_trigger:
        raise NoUpliftData(
            f"too few trigger sends before {trained_before:%Y-%m-%d} to fit: each arm (sent, "
            f"holdout) needs at least {MIN_ARM} rows with both outcomes; "
            f"have {model.counts}"
        )
    pct = f"{round(budget * 100)}pct"
    report: dict = {
        "model_version": model.version,
        "trained_on_sends_before": str(trained_before),
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
            entry["observed_incremental_rate"] = round(
                float(y[treated].mean() - y[~treated].mean()), 4
            )
            entry["qini_coefficient"] = round(qini_coefficient(y, treated, up), 5)
            entry[f"incremental_revisits_at_{pct}"] = {
                "uplift": round(_qini_at(y, treated, up, budget), 1),
                "score": round(_qini_at(y, treated, p_sent, budget), 1),
                "send_to_all": round(_qini_at(y, treated, up, 1.0) * budget, 1),
            }
        report["triggers"][trigger] = entry
    return model, report


def _qini_at(y: np.ndarray, treated: np.ndarray, score: np.ndarray, share: float) -> float:
    shares, q = qini_curve(y, treated, score)
    return float(q[int(np.searchsorted(shares, share))])


# --- scoring ---------------------------------------------------------------------------


def ensure_uplift_table(client: Client) -> None:
    """Create `ml.uplift_scores` when missing."""
    client.command("CREATE DATABASE IF NOT EXISTS ml")
    client.command(UPLIFT_DDL)


def score_uplift(
    client: Client, model: UpliftModel, at: dt.datetime, *, triggers: Sequence[str] | None = None
) -> int:
    """Score every customer with a visit before `at` for each trigger (default: every
    trigger the model knows) into `ml.uplift_scores`; returns the rows written. A rerun
    with the same model version and `at` replaces its rows."""
    ensure_uplift_table(client)
    frame = customer_frame(client, at)
    names = list(triggers or model.triggers)
    client.command(
        f"DELETE FROM {UPLIFT_TABLE} WHERE model_version = {{v:String}} "
        "AND scored_at = {at:DateTime64(3, 'UTC')}",
        parameters={"v": model.version, "at": at},
    )
    written = 0
    for trigger in names:
        p1, p0 = model.arms(frame, trigger)
        out = pd.DataFrame(
            {
                "business_id": frame["business_id"],
                "customer_id": frame["customer_id"],
                "trigger": trigger,
                "scored_at": pd.Timestamp(at).tz_convert("UTC")
                if pd.Timestamp(at).tzinfo
                else pd.Timestamp(at, tz="UTC"),
                "model_version": model.version,
                "p_sent": p1,
                "p_not_sent": p0,
                "uplift": p1 - p0,
            }
        )
        if len(out):
            client.insert_df(UPLIFT_TABLE, out)
        written += len(out)
    return written
