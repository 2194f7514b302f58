"""Provider fault storms: a seeded fault plan for the stand-ins, delivery rerun until every
row is final, and an audit of what the providers did, from their own records.

    with run_standins(faults=storm_plan(seed=1)) as cluster:
        outbox.enqueue(plans)
        reports = deliver_until_final(outbox, storm_config(cluster), cluster)
        result = audit(cluster, outbox, plans)   # result["double_accruals"] must be 0

What the audit checks, per provider (the README's "Delivery guarantees"):

- ledger, SMS: every planned key has exactly one effect (the ledger's entries listed by
  idempotency key; the SMS gateway's accepted messages by `client_ref`);
- WhatsApp (resends asked `already_delivered` first, here the stand-in's lookup, i.e. every
  status webhook has arrived): exactly one effect per key;
- Telegram (`resend_once`): at most two effects per key, and a second only where the row
  says it was resent after an unknown outcome; a row whose resend's outcome is unknown too
  is dead-lettered (`ambiguous`) for a human, whatever the chat received;
- nothing lost: every row final, and every row recorded `sent` has an effect;
- Retry-After: after a 429 answered at `t` telling `retry_after`, the next request for the
  same key arrives no earlier than `t + retry_after`, nor does any request to that provider
  while the client must have known of the 429, except the ones already on their way
  (`retry_after_audit`).
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from activation.config import ProvidersConfig
from activation.contracts import PlannedAccrual, PlannedMessage, State
from activation.delivery import DeliveryReport, deliver
from activation.outbox import Outbox
from simulation.providers import PROVIDERS, FaultPlan, StandinCluster
from simulation.providers.apps import AFTER_COMMIT

# Per request: about half the requests end in an outcome the client cannot know (after the
# provider committed), a few in 5xx bursts before any work, a few 429s and slow answers.
STORM_RATES: dict[str, float] = {
    "timeout": 0.18,
    "reset": 0.12,
    "drop": 0.05,
    "committed_500": 0.04,
    "committed_502": 0.03,
    "committed_503": 0.03,
    "500": 0.005,
    "502": 0.005,
    "503": 0.01,
    "429": 0.004,
    "slow": 0.03,
}
FINAL = {State.sent.value, State.skipped.value, State.dead.value}
UNFINISHED = (State.planned, State.sending, State.failed)


def storm_plan(
    seed: int,
    *,
    providers: Iterable[str] = PROVIDERS,
    rates: dict[str, float] | None = None,
    http_timeout_s: float = 0.05,
    retry_after_s: float = 0.2,
    burst: int = 3,
) -> FaultPlan:
    """Fault settings per stand-in (own seed each): timeouts held past the client's
    `http_timeout_s`, slow answers well inside it, 5xx in bursts of `burst`."""
    return {
        provider: {
            "seed": seed * 1000 + i,
            "rates": dict(rates if rates is not None else STORM_RATES),
            "burst": burst,
            "timeout_s": http_timeout_s * 2,
            "slow_s": http_timeout_s / 5,
            "retry_after_s": retry_after_s,
        }
        for i, provider in enumerate(providers)
    }


def storm_config(
    cluster: StandinCluster, *, http_timeout_s: float = 0.05, **overrides: Any
) -> ProvidersConfig:
    """Delivery settings for a storm: short timeouts and backoffs, no rate limits, retries
    in the next run at once, enough total attempts that no row runs out of them."""
    values: dict[str, Any] = {
        "http_timeout_s": http_timeout_s,
        "http_connect_timeout_s": 2.0,
        "backoff_base_s": 0.005,
        "backoff_max_s": 0.05,
        "max_attempts_per_run": 4,
        "max_total_attempts": 100,
        "max_retry_wait_s": 2.0,
        "retry_later_s": 0.0,
        "lease_s": 30.0,
        "concurrency": 32,
        "claim_batch": 64,
    }
    values.update(overrides)
    return cluster.providers_config(**values).without_rate_limits()


def unfinished(outbox: Outbox) -> int:
    """Rows a later run would still claim (a permanent failure has no next attempt)."""
    return sum(
        row["next_attempt_at"] is not None
        for kind in ("message", "accrual") for state in UNFINISHED
        for row in outbox.rows(kind, state=state)
    )  # fmt: skip


def deliver_until_final(
    outbox: Outbox, config: ProvidersConfig, cluster: StandinCluster, *, max_runs: int = 100
) -> list[DeliveryReport]:
    """Run delivery again and again (as the schedule would) until no row is left to do.

    WhatsApp resends ask the stand-in's lookup first: the production hook reads the status
    webhooks, which the stand-in stands for as if every webhook had arrived."""
    admin = cluster.admin("whatsapp") if "whatsapp" in cluster.urls else None

    def already_delivered(key: str) -> str | bool:
        if admin is None:
            return False
        found = admin.lookup(key)
        return found["provider_message_id"] or False if found["found"] else False

    reports: list[DeliveryReport] = []
    while unfinished(outbox):
        if len(reports) >= max_runs:
            raise RuntimeError(f"rows still unfinished after {max_runs} delivery runs")
        report = deliver(outbox, config, already_delivered=already_delivered)
        reports.append(report)
        if report.claimed == 0:  # rows waiting out a Retry-After or backoff
            time.sleep(0.02)
    return reports


def retry_after_audit(requests: Sequence[dict[str, Any]], in_flight_s: float) -> dict[str, Any]:
    """Requests that came too early after a 429, from one provider's request log (`t0`
    arrival, `t` answer, `conn` connection, `retry_after` on 429s).

    Only a 429 the client received binds it. Under load a client may have timed out before
    the stand-in answered; it then closed the connection. So a 429 counts when its
    connection carried a later request (the client reuses a connection only after reading
    its answer in full); the others are reported as `unconfirmed`.

    The client learns of the 429 at some moment `T` ≥ `t` (its event loop may be busy) and
    must send nothing to the provider until `T + retry_after`. The connection is free again
    only from `T` on, and the limited key retries only after the pause, so the first of
    those two follow-ups, `f`, bounds `T` ≤ `f − retry_after`. Checked: (1) both follow-ups
    arrive `retry_after` or more after `t`; (2) nothing arrives in
    [`f − retry_after + in_flight_s`, `t + retry_after`), the span inside the pause whatever
    `T` was, but requests written before `T` and still on their way (`in_flight_s`).
    """
    rows = sorted(requests, key=lambda r: r["t0"])
    arrivals = [r["t0"] for r in rows]
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_conn: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_key[row["key"]].append(row)
        by_conn[row["conn"]].append(row)
    limited = [r for r in rows if r["status"] == 429 and r["retry_after"] is not None]
    violations: list[dict[str, Any]] = []
    in_flight, unconfirmed, gaps = 0, 0, []
    for r429 in limited:
        t, pause = r429["t"], r429["retry_after"]
        on_conn = next((r for r in by_conn[r429["conn"]] if r["t0"] > t), None)
        if on_conn is None:
            unconfirmed += 1
            continue
        on_key = next((r for r in by_key[r429["key"]] if r["t0"] > t), None)
        follow_ups = [r for r in (on_conn, on_key) if r is not None]
        for row in follow_ups:
            gaps.append(row["t0"] - t)
            if row["t0"] - t < pause:
                gap = round(row["t0"] - t, 4)
                violations.append({"after_429_seq": r429["seq"], "seq": row["seq"],
                                   "gap_s": gap, "follow_up": True})  # fmt: skip
        learnt_by = max(t, min(r["t0"] for r in follow_ups) - pause)
        for row in rows[bisect_right(arrivals, t) : bisect_right(arrivals, t + pause)]:
            if row["t0"] <= learnt_by + in_flight_s:
                in_flight += 1
            elif all(row is not r for r in follow_ups):
                violations.append({"after_429_seq": r429["seq"], "seq": row["seq"],
                                   "gap_s": round(row["t0"] - t, 4)})  # fmt: skip
    seen = {v["seq"]: v for v in violations}  # a request inside two pauses counts once
    return {
        "responses_429": len(limited),
        "unconfirmed": unconfirmed,
        "violations": list(seen.values()),
        "in_flight": in_flight,
        "min_follow_up_gap_s": round(min(gaps), 4) if gaps else None,
    }


def audit(
    cluster: StandinCluster,
    outbox: Outbox,
    plans: Sequence[PlannedMessage | PlannedAccrual],
    *,
    in_flight_s: float = 0.05,
) -> dict[str, Any]:
    """What the stand-ins did for `plans`, checked against the per-provider guarantees.

    Counts come from the providers' records (request logs, effects per idempotency key,
    the ledger's own entry listing), states from the outbox; nothing from the client's
    own report. `ok` is True when every guarantee held."""
    requests = {p: cluster.admin(p).requests() for p in cluster.urls}
    effects = {p: cluster.admin(p).effects() for p in cluster.urls}
    rows = {r["idempotency_key"]: r for kind in ("message", "accrual") for r in outbox.rows(kind)}
    planned: dict[str, list[str]] = defaultdict(list)
    for plan in plans:
        provider = "ledger" if isinstance(plan, PlannedAccrual) else plan.channel.value
        planned[provider].append(plan.idempotency_key)

    faults = Counter(r["fault"] for rs in requests.values() for r in rs if r["fault"])
    out: dict[str, Any] = {
        "requests": sum(len(rs) for rs in requests.values()),
        "ambiguous_outcomes": sum(faults[f] for f in AFTER_COMMIT),
        "faults": dict(sorted(faults.items())),
        "unfinished": sum(rows[k]["state"] not in FINAL for ks in planned.values() for k in ks),
    }
    # A row recorded sent that the provider never received is a lost message.
    out["lost"] = sum(
        rows[k]["state"] == State.sent.value and not effects[p].get(k)
        for p, keys in planned.items() for k in keys
    ) + sum(rows.get(k) is None for keys in planned.values() for k in keys)  # fmt: skip
    # Effects for keys nobody planned would be a client sending what it should not.
    known = {k for keys in planned.values() for k in keys}
    out["unplanned_effects"] = sum(k not in known for e in effects.values() for k in e)

    if "ledger" in planned:
        entries = Counter(e["idempotency_key"] for e in cluster.admin("ledger").ledger_entries())
        keys = planned["ledger"]
        out["accruals"] = len(keys)
        out["double_accruals"] = sum(effects["ledger"].get(k, 0) > 1 for k in keys) + sum(
            entries[k] > 1 for k in keys
        )
        out["accruals_missing"] = sum(entries[k] == 0 for k in keys)
        out["accruals_exactly_once"] = all(
            entries[k] == 1 and effects["ledger"].get(k) == 1 for k in keys
        )
    for provider in ("sms", "whatsapp"):
        if provider in planned:
            keys = planned[provider]
            out[f"{provider}_not_once"] = sum(effects[provider].get(k, 0) != 1 for k in keys)
    if "telegram" in planned:
        keys = planned["telegram"]
        n = Counter(effects["telegram"].get(k, 0) for k in keys)
        unexplained = [
            k for k in keys
            if effects["telegram"].get(k, 0) == 2 and rows[k]["state"] == State.sent.value
            and "resent after an unknown outcome" not in (rows[k]["last_error"] or "")
        ]  # fmt: skip
        out["telegram"] = {
            "effects_histogram": dict(sorted(n.items())),
            "over_two": sum(v for e, v in n.items() if e > 2),
            "duplicates_unexplained": len(unexplained),
            "dead_ambiguous": sum(rows[k]["reason"] == "ambiguous" for k in keys),
            "dead_ambiguous_never_received": sum(
                rows[k]["reason"] == "ambiguous" and not effects["telegram"].get(k) for k in keys
            ),
        }
    out["retry_after"] = {p: retry_after_audit(rs, in_flight_s) for p, rs in requests.items()}
    out["retry_after_violations"] = sum(len(a["violations"]) for a in out["retry_after"].values())
    out["ok"] = (
        out["unfinished"] == 0
        and out["lost"] == 0
        and out["unplanned_effects"] == 0
        and out.get("double_accruals", 0) == 0
        and out.get("accruals_exactly_once", True)
        and out.get("sms_not_once", 0) == 0
        and out.get("whatsapp_not_once", 0) == 0
        and out.get("telegram", {}).get("over_two", 0) == 0
        and out.get("telegram", {}).get("duplicates_unexplained", 0) == 0
        and out["retry_after_violations"] == 0
    )
    return out
