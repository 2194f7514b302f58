"""Delivery: claim due outbox rows, send them through the providers, commit the results.

    report = deliver(Outbox(state_dsn), providers_config)

Pipeline (one event loop): a producer claims batches of `claim_batch` rows just in time
(each claim committed before any of its rows is sent), `concurrency` workers send them
within each provider's rate limit, and results are committed in batches (per
`claim_batch` results or every `flush_interval_s`), so SQLite costs two transactions per
batch rather than per message.

Crash safety (kill -9 anywhere): a row is either `planned`/`failed` (not sent, or a
definite failure), `sending` (claimed; its request may or may not have had an effect), or
final. A later run re-claims `sending` rows once their lease expires (`uncertain` set).
What happens then depends on the provider (the README's "Delivery guarantees"):

- ledger, SMS: resent with the SAME idempotency key; the provider dedupes on it
  (`Idempotency-Key`, `client_ref`) and replays its first answer — exactly once.
- WhatsApp: `already_delivered(key)` is asked first (in production the status webhooks
  that carry our `biz_opaque_callback_data`, `messenger_events_lookup`); found → recorded
  as sent without a request; not found → resent, and the row's `last_error` says so. So
  a duplicate needs the webhook of an accepted message to be missing when we ask: at
  most one duplicate per lost outcome.
- Telegram: no idempotency key, no status webhooks, nothing to ask. Per
  `telegram_crash_policy`: `resend_once` (default) writes a marker row first (`failed`,
  reason `resend_once`, error_code `ambiguous@<claim>`) and resends at that claim only
  (a second pass of the same run picks it up); a later claim that finds the resend's own
  outcome unknown dead-letters the row (reason `ambiguous`): at most one duplicate
  however often the process dies. `at_most_once`: the row is dead-lettered at once, never
  resent. Timeouts, dropped connections and 5xx answers inside a run are treated the same
  way.

Leases must outlast a row's time in one run: `lease_s` ≥ `max_attempts_per_run` ×
(`http_timeout_s` + `max_retry_wait_s`) is safe; a worker never sends a row whose lease
it no longer holds.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from activation.contracts import State
from activation.outbox import KINDS, Completion, Kind, Outbox, utcnow
from activation.providers import (
    AlreadyDelivered,
    OutboxItem,
    Provider,
    Providers,
    ProvidersConfig,
    SendResult,
)
from warehouse.privacy import mask_text


@dataclass(frozen=True)
class OptOut:
    """A recipient who asked not to be contacted (Telegram block, WhatsApp 131050).

    The caller persists these (consent store) so the planner stops planning for them.
    """

    channel: str
    recipient: str
    business_id: str
    customer_id: str
    phone_e164: str
    idempotency_key: str
    code: str
    at: datetime


@dataclass
class DeliveryReport:
    """What one run did. `states` counts the final state of each row this run resolved."""

    run_id: str
    claimed: int = 0
    recovered: int = 0  # rows re-claimed from a crashed/expired run
    expired_swept: int = 0
    states: Counter[str] = field(default_factory=Counter)
    by_provider: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    error_codes: Counter[str] = field(default_factory=Counter)  # "provider:code"
    opt_outs: list[OptOut] = field(default_factory=list)
    http_requests: int = 0
    confirmed_by_lookup: int = 0
    ambiguous_outcomes: int = 0  # requests whose outcome was unknown (timeout, lost, 5xx)
    ambiguous_resends: int = 0  # resends of unknown outcome on non-idempotent providers
    resends_recorded: int = 0  # Telegram rows marked for their one resend (see module doc)
    ambiguous_dead: int = 0  # Telegram rows dead-lettered because their outcome is unknown
    replayed: int = 0  # provider answered with the stored original (idempotent replay)
    lease_lost: int = 0  # claimed rows not sent because their lease ran out in the queue
    not_committed: int = 0  # results another run had taken over (lease too short)
    elapsed_s: float = 0.0

    @property
    def sent_per_s(self) -> float:
        return self.states.get("sent", 0) / self.elapsed_s if self.elapsed_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("states", "by_provider", "error_codes", "opt_outs")
        }
        out["states"] = dict(self.states)
        out["by_provider"] = {p: dict(c) for p, c in self.by_provider.items()}
        out["error_codes"] = dict(self.error_codes)
        out["opt_outs"] = [{**asdict(o), "at": o.at.isoformat()} for o in self.opt_outs]
        out["sent_per_s"] = round(self.sent_per_s, 1)
        return out


MAX_RETRY_AFTER_S = 7 * 86_400.0  # a provider's longer (or garbled) pause is capped


def _next_attempt(config: ProvidersConfig, attempts: int, retry_after: float | None) -> timedelta:
    backoff = min(config.retry_later_s * 2 ** max(attempts - 1, 0), 86_400.0)
    return timedelta(seconds=max(backoff, min(retry_after or 0.0, MAX_RETRY_AFTER_S)))


def _completion(
    item: OutboxItem, token: str, result: SendResult, config: ProvidersConfig, now: datetime
) -> Completion:
    if result.ok:
        note = None
        if result.confirmed_by_lookup:
            note = "confirmed by already_delivered lookup"
        elif result.ambiguous_resends:
            note = "resent after an unknown outcome (no record of it found): may be a duplicate"
        return Completion(
            item.key, token, State.sent, provider=result.provider,
            provider_ref=result.provider_message_id, sent_at=now, last_error=note,
        )  # fmt: skip
    # Provider error bodies can echo the recipient's phone or name: the outbox and the
    # activation log keep them masked, like everything else shown to operators.
    error = (
        f"{result.error_code}: {mask_text(result.error_message)}" if result.error_message else None
    )
    if result.permanent:
        return Completion(
            item.key, token, State.failed, reason="permanent", provider=result.provider,
            error_code=result.error_code, last_error=error,
        )  # fmt: skip
    # A row sent back because the provider is paused made no request: its claim is not an
    # attempt, so a long flood-control pause cannot use up a row's attempts.
    unsent = result.deferred and result.http_attempts == 0
    if item.attempts >= config.max_total_attempts and not unsent:
        return Completion(
            item.key, token, State.dead, reason="max_attempts", provider=result.provider,
            error_code=result.error_code, last_error=error, uncertain=result.uncertain,
        )  # fmt: skip
    return Completion(
        item.key, token, State.failed, reason="retry", provider=result.provider,
        error_code=result.error_code, last_error=error, uncertain=result.uncertain,
        next_attempt_at=now + _next_attempt(config, item.attempts - unsent, result.retry_after_s),
        refund_attempt=unsent,
    )  # fmt: skip


RESEND_ONCE = "resend_once"
AMBIGUOUS = "ambiguous"


def _resend_claim(outbox: Outbox, item: OutboxItem) -> int | None:
    """The claim number a Telegram row's one resend was recorded for, if it has one.

    A claim leaves reason and error_code as the last completion wrote them, so the
    marker survives the claim that makes the resend (and a crash during it).
    """
    rows = outbox.rows("message", keys=[item.key])
    if not rows or rows[0]["reason"] != RESEND_ONCE:
        return None
    _, _, claim = (rows[0]["error_code"] or "").partition("@")
    return int(claim) if claim.isdigit() else None


def _ambiguous_dead(item: OutboxItem, token: str, why: str) -> Completion:
    return Completion(
        item.key, token, State.dead, reason=AMBIGUOUS, provider=item.channel,
        error_code=AMBIGUOUS, uncertain=True,
        last_error=f"{why}; Telegram has no idempotency key, so it is not resent: "
        "check the chat and resend by hand if it never arrived",
    )  # fmt: skip


def _resend_marker(item: OutboxItem, token: str, why: str) -> Completion:
    claim = item.attempts + 1
    return Completion(
        item.key, token, State.failed, reason=RESEND_ONCE, provider=item.channel,
        error_code=f"{AMBIGUOUS}@{claim}", uncertain=True, next_attempt_at=utcnow(),
        last_error=f"{why}; resending once, at claim {claim} (telegram_crash_policy=resend_once)",
    )  # fmt: skip


async def _deliver_telegram(
    outbox: Outbox, client: Provider, item: OutboxItem, token: str, config: ProvidersConfig
) -> tuple[Completion, SendResult | None]:
    """A Telegram row under `telegram_crash_policy`: every resend of an unknown outcome is
    recorded in the outbox before it is made, so crashes can never add a second one."""
    at_most_once = config.telegram_crash_policy == "at_most_once"
    resend = False
    if item.uncertain:
        why = "an earlier attempt's outcome is unknown (crash or lost answer)"
        claim = _resend_claim(outbox, item)
        if at_most_once:
            return _ambiguous_dead(item, token, why), None
        if claim is not None and item.attempts > claim:
            why = f"the one resend (claim {claim}) has an unknown outcome too"
            return _ambiguous_dead(item, token, why), None
        if claim != item.attempts:
            return _resend_marker(item, token, why), None
        resend = True
    result = await client.send(item, resend_unknown=False)
    if result.ambiguous_attempts:
        why = f"the request's outcome is unknown ({result.error_code})"
        if at_most_once or resend:
            return _ambiguous_dead(item, token, why), result
        return _resend_marker(item, token, why), result
    return _completion(item, token, result, config, utcnow()), result


async def _resolve_expired(
    item: OutboxItem, token: str, already_delivered: AlreadyDelivered | None
) -> Completion:
    """A recovered message past its expiry: never send; sent if the provider has it."""
    if already_delivered is not None:
        found = already_delivered(item.key)
        if inspect.isawaitable(found):
            found = await found
        if found:
            return Completion(
                item.key, token, State.sent, provider=item.channel,
                provider_ref=found if isinstance(found, str) else None, sent_at=utcnow(),
                last_error="confirmed by already_delivered lookup",
            )  # fmt: skip
    return Completion(
        item.key, token, State.skipped, reason="expired", uncertain=item.uncertain,
        last_error="expired while its outcome was unknown" if item.uncertain else None,
    )  # fmt: skip


async def deliver_async(
    outbox: Outbox,
    providers: Providers | ProvidersConfig,
    *,
    limit: int | None = None,
    concurrency: int | None = None,
    kinds: Iterable[Kind] = KINDS,
    already_delivered: AlreadyDelivered | None = None,
    flush_interval_s: float = 0.2,
) -> DeliveryReport:
    """Deliver due rows (at most `limit` claims) and return the run's report.

    `providers` may be a config (clients are then created and closed here).
    `already_delivered(key)` (sync or async, truthy = the provider has it) is consulted
    before resending a WhatsApp row whose outcome is unknown (Telegram: see the module
    doc). When Telegram rows were marked for their one resend, a second pass (messages
    only, within `limit`) claims and sends them.
    """
    own_clients = isinstance(providers, ProvidersConfig)
    clients = (
        Providers.from_config(providers) if isinstance(providers, ProvidersConfig) else providers
    )
    config = clients.whatsapp.config
    concurrency = concurrency or config.concurrency
    run_id = uuid.uuid4().hex[:16]
    report = DeliveryReport(run_id=run_id)
    started = time.perf_counter()
    report.expired_swept = outbox.sweep()
    report.states["skipped"] += report.expired_swept

    batch = config.claim_batch
    # Never keep a claimed row queued past its lease: keep a margin for the send itself.
    lease_margin_s = min(config.lease_s / 2, config.http_timeout_s + 1.0)
    queue: asyncio.Queue[tuple[Kind, str, OutboxItem, float] | None] = asyncio.Queue()
    batch_no = 0
    buffers: dict[Kind, list[Completion]] = {"message": [], "accrual": []}
    last_flush = time.monotonic()

    def flush(kind: Kind | None = None) -> None:
        nonlocal last_flush
        for k in (kind,) if kind else KINDS:
            if buffers[k]:
                done, buffers[k] = buffers[k], []
                updated = outbox.complete(k, done)
                report.not_committed += len(done) - updated
        last_flush = time.monotonic()

    marked: set[str] = set()  # rows marked for their resend in this run (counted `failed`)

    def account(item: OutboxItem, completion: Completion, result: SendResult | None) -> None:
        provider = completion.provider or item.channel
        if item.key in marked:  # its resend in the second pass: count the row once
            marked.discard(item.key)
            for counter in (report.states, report.by_provider[provider]):
                counter.subtract(["failed"])
                if counter["failed"] <= 0:
                    del counter["failed"]
        if completion.reason == RESEND_ONCE:
            marked.add(item.key)
        report.states[completion.state.value] += 1
        report.by_provider[provider][completion.state.value] += 1
        if completion.error_code and completion.reason != RESEND_ONCE:
            report.error_codes[f"{provider}:{completion.error_code}"] += 1
        report.resends_recorded += completion.reason == RESEND_ONCE
        report.ambiguous_dead += completion.reason == AMBIGUOUS
        if result is None:
            return
        report.http_requests += result.http_attempts
        report.confirmed_by_lookup += result.confirmed_by_lookup
        report.ambiguous_outcomes += result.ambiguous_attempts
        report.ambiguous_resends += result.ambiguous_resends
        report.replayed += result.replayed
        if result.opt_out and item.kind == "message":
            p = item.payload
            report.opt_outs.append(
                OptOut(
                    channel=item.channel, recipient=str(p["recipient"]),
                    business_id=p["business_id"], customer_id=p["customer_id"],
                    phone_e164=p["phone_e164"], idempotency_key=item.key,
                    code=result.error_code or "opt_out", at=utcnow(),
                )
            )  # fmt: skip

    async def producer(kinds: Iterable[Kind], remaining: float) -> None:
        nonlocal batch_no
        for kind in kinds:
            while remaining > 0:
                # Claim just in time: leases start ticking at the claim.
                while queue.qsize() > batch // 2:
                    await asyncio.sleep(0.002)
                n = int(min(batch, remaining))
                token = f"{run_id}:{batch_no}"
                batch_no += 1
                items = outbox.claim(kind, n, run_token=token, lease_s=config.lease_s)
                deadline = time.monotonic() + config.lease_s - lease_margin_s
                report.claimed += len(items)
                remaining -= len(items)
                for item in items:
                    # A row marked for its resend in this run is not a recovery.
                    report.recovered += item.uncertain and item.key not in marked
                    queue.put_nowait((kind, token, item, deadline))
                if len(items) < n:
                    break
        for _ in range(concurrency):
            queue.put_nowait(None)

    async def worker() -> None:
        while (entry := await queue.get()) is not None:
            kind, token, item, deadline = entry
            if time.monotonic() > deadline:
                report.lease_lost += 1  # left in `sending`; re-claimed as uncertain later
                continue
            result: SendResult | None = None
            expires = item.payload.get("expires_at") if kind == "message" else None
            if expires and datetime.fromisoformat(expires) <= utcnow():
                completion = await _resolve_expired(item, token, already_delivered)
            elif kind == "message" and item.channel == "telegram":
                completion, result = await _deliver_telegram(
                    outbox, clients.telegram, item, token, config
                )
            else:
                result = await clients.for_item(item).send(item, already_delivered)
                completion = _completion(item, token, result, config, utcnow())
            account(item, completion, result)
            buffers[kind].append(completion)
            if len(buffers[kind]) >= batch or time.monotonic() - last_flush > flush_interval_s:
                flush(kind)

    try:
        budget = limit if limit is not None else float("inf")
        await asyncio.gather(producer(kinds, budget), *(worker() for _ in range(concurrency)))
        flush()
        if report.resends_recorded and budget - report.claimed > 0:
            # The marked rows are due now; a second pass makes their one resend. Only
            # one: rows marked in it wait for the next run.
            budget -= report.claimed
            await asyncio.gather(
                producer(("message",), budget),
                *(worker() for _ in range(concurrency)),
            )
        # A Retry-After pause binds whoever sends next, also the next run (a schedule's
        # or a rerun right away, in this process or another): the run ends after it.
        pauses = [c.gate.left() for c in (clients.whatsapp, clients.telegram, clients.sms,
                                          clients.ledger)]  # fmt: skip
        await asyncio.sleep(min(max(pauses), config.max_retry_wait_s))
    finally:
        flush()  # results of everything sent so far, also when a worker raised
        if own_clients:
            await clients.aclose()
    report.elapsed_s = time.perf_counter() - started
    return report


def deliver(
    outbox: Outbox,
    providers: Providers | ProvidersConfig,
    *,
    limit: int | None = None,
    concurrency: int | None = None,
    kinds: Iterable[Kind] = KINDS,
    already_delivered: AlreadyDelivered | None = None,
) -> DeliveryReport:
    """Sync wrapper of `deliver_async` (its own event loop; pass a config, not clients)."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(
            deliver_async(
                outbox,
                providers,
                limit=limit,
                concurrency=concurrency,
                kinds=kinds,
                already_delivered=already_delivered,
            )
        )


def _loop_factory() -> Any:
    try:  # uvloop (shipped with uvicorn[standard]) roughly halves the per-request overhead
        import uvloop

        return uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop


def messenger_events_lookup(client: Any) -> AlreadyDelivered:
    """`already_delivered` backed by `marts.fct_messenger_status_events` (status webhooks
    carry our key as `message_id`: WhatsApp `biz_opaque_callback_data`, SMS `client_ref`).

    That mart is a view over the loaded webhooks, computed when queried: a status webhook
    loaded seconds ago is found, without waiting for a dbt build. `client` is an open
    warehouse client; the hook returns the provider message id if a status event for the
    key exists.
    """

    def already_delivered(key: str) -> str | bool:
        rows = client.query(
            "SELECT any(provider_message_id) FROM marts.fct_messenger_status_events "
            "WHERE message_id = {k:String} AND status IN ('sent', 'delivered', 'read') "
            "HAVING count() > 0",
            parameters={"k": key},
        ).result_rows
        return (rows[0][0] or True) if rows else False

    return already_delivered
