"""The transactional outbox: planned messages and accruals, keyed by idempotency key.

Tables (SQLAlchemy Core; SQLite by default, PostgreSQL through the state DSN):

`outbox_messages` / `outbox_accruals` — one row per `idempotency_key` (PRIMARY KEY):
campaign_id, business_id, customer_id, channel (messages) / currency, amount (decimal
string), source_event_id (accruals), payload (the planned model as JSON), state
(planned → sending → sent | failed | skipped | dead), reason (skipped: `holdout`,
`expired`; failed: `permanent` or `retry`), attempts (claims so far, less those sent
back without a request while the provider was paused), next_attempt_at
(NULL = never again), lease: claimed_at / lease_until / run_token, uncertain (an earlier
attempt's outcome is unknown), provider, provider_message_id (messages) / ledger_entry_id
(accruals), error_code, last_error, created_at / updated_at / sent_at (UTC), version
(bumped on every change; the warehouse log's ReplacingMergeTree version). A partial index
`ix_<table>_claim_order` on (priority desc, next_attempt_at) of rows that may still be
sent lets a claim read about one batch of rows, whatever the outbox's size.

Invariants:
- `enqueue` never re-plans or resets a key that exists (INSERT … ON CONFLICT DO NOTHING).
- A row is moved to `sending` with a lease in its own committed transaction *before* any
  request for it leaves (`claim`); results are committed after (`complete`, batched), and
  only by the claim that owns the row (run_token matches). A row whose lease expired
  (crashed run) is claimed again with the same key and `uncertain` set.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    create_engine,
    event,
    func,
    not_,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.schema import CreateIndex
from sqlalchemy.types import TypeDecorator

from activation.contracts import PlannedAccrual, PlannedMessage, State
from activation.providers.base import OutboxItem

Kind = Literal["message", "accrual"]
KINDS: tuple[Kind, ...] = ("message", "accrual")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC out; stored naive-UTC so SQLite compares correctly."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: outbox timestamps must be UTC-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


metadata = MetaData()


def _common_columns() -> list[Column[Any]]:
    return [
        Column("idempotency_key", String(64), primary_key=True),
        Column("campaign_id", String(200), nullable=False),
        Column("business_id", String(100), nullable=False),
        Column("customer_id", String(100), nullable=False),
        Column("payload", JSON, nullable=False),
        Column("state", String(16), nullable=False, index=True),
        Column("reason", String(40)),
        Column("priority", Integer, nullable=False, default=0),
        Column("attempts", Integer, nullable=False, default=0),
        Column("next_attempt_at", UTCDateTime, index=True),
        Column("claimed_at", UTCDateTime),
        Column("lease_until", UTCDateTime),
        Column("run_token", String(64)),
        Column("uncertain", Boolean, nullable=False, default=False),
        Column("provider", String(20)),
        Column("error_code", String(60)),
        Column("last_error", Text),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Column("sent_at", UTCDateTime),
        Column("version", Integer, nullable=False, default=1),
    ]


messages = Table(
    "outbox_messages",
    metadata,
    *_common_columns(),
    Column("trigger", String(60), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("recipient", String(64), nullable=False),
    Column("holdout", Boolean, nullable=False, default=False),
    Column("send_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("provider_message_id", String(120)),
)

accruals = Table(
    "outbox_accruals",
    metadata,
    *_common_columns(),
    Column("amount", String(24), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("source_event_id", String(200), nullable=False, index=True),
    Column("ledger_entry_id", String(120)),
)

TABLES: dict[Kind, Table] = {"message": messages, "accrual": accruals}


def _claim_order_index(table: Table) -> Index:
    """Claims walk rows in (priority desc, next_attempt_at) order and stop after a batch.

    Without this index a claim sorts every due row (a full pass per batch: quadratic in the
    outbox's size). Finished rows have no next_attempt_at and are left out of it.
    """
    live = table.c.next_attempt_at.is_not(None)
    return Index(
        f"ix_{table.name}_claim_order", table.c.priority.desc(), table.c.next_attempt_at,
        sqlite_where=live, postgresql_where=live,
    )  # fmt: skip


CLAIM_ORDER: dict[Kind, Index] = {kind: _claim_order_index(t) for kind, t in TABLES.items()}
REF_COLUMN: dict[Kind, str] = {"message": "provider_message_id", "accrual": "ledger_entry_id"}


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class EnqueueResult:
    inserted: int = 0
    existing: int = 0  # keys already in the outbox: left exactly as they were
    holdout: int = 0  # inserted as skipped/holdout


@dataclass
class Completion:
    """The result of one claimed row, to be committed by `Outbox.complete`."""

    key: str
    run_token: str
    state: State
    reason: str | None = None
    provider: str | None = None
    provider_ref: str | None = None
    error_code: str | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    uncertain: bool = False
    sent_at: datetime | None = None
    refund_attempt: bool = False  # no request left: the claim does not count as an attempt


def _sqlite_pragmas(engine: Engine) -> None:
    """WAL for concurrent readers; BEGIN IMMEDIATE so a claim's read-then-update cannot be
    interleaved with another process's claim (no lock-upgrade deadlock)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below rule
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Outbox:
    """The outbox store. `Outbox(dsn)` creates the tables if missing."""

    def __init__(self, dsn_or_engine: str | Engine) -> None:
        if isinstance(dsn_or_engine, Engine):
            self.engine = dsn_or_engine
        else:
            if dsn_or_engine.startswith("sqlite:///"):
                from pathlib import Path

                Path(dsn_or_engine.removeprefix("sqlite:///")).parent.mkdir(
                    parents=True, exist_ok=True
                )
            # orjson reads the claimed rows' payloads at a tenth of the stdlib's CPU.
            self.engine = create_engine(dsn_or_engine, json_deserializer=orjson.loads)
        if self.engine.dialect.name == "sqlite":
            _sqlite_pragmas(self.engine)
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:  # also on tables created before the index existed
            for index in CLAIM_ORDER.values():
                conn.execute(CreateIndex(index, if_not_exists=True))

    def dispose(self) -> None:
        self.engine.dispose()

    # -- planning ------------------------------------------------------------------------------
    def _insert(self, table: Table) -> Any:
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        elif dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:  # pragma: no cover - other dialects: the pre-check below narrows the race
            return table.insert()
        return insert(table).on_conflict_do_nothing(index_elements=["idempotency_key"])

    def enqueue(
        self, plans: Iterable[PlannedMessage | PlannedAccrual], *, now: datetime | None = None
    ) -> EnqueueResult:
        """Store plans by key; a key already present (any state) is left untouched.

        Holdout messages are stored as `skipped` (reason `holdout`) and never sent.
        Duplicate keys within `plans`: the first wins.
        """
        now = now or utcnow()
        result = EnqueueResult()
        rows: dict[Kind, dict[str, dict[str, Any]]] = {"message": {}, "accrual": {}}
        for plan in plans:
            kind: Kind = "message" if isinstance(plan, PlannedMessage) else "accrual"
            if plan.idempotency_key in rows[kind]:
                result.existing += 1
                continue
            rows[kind][plan.idempotency_key] = self._row(plan, now)
        with self.engine.begin() as conn:
            for kind, by_key in rows.items():
                table = TABLES[kind]
                keys = list(by_key)
                for start in range(0, len(keys), 500):
                    chunk = keys[start : start + 500]
                    present = set(
                        conn.execute(
                            select(table.c.idempotency_key).where(
                                table.c.idempotency_key.in_(chunk)
                            )
                        ).scalars()
                    )
                    new_rows = [by_key[k] for k in chunk if k not in present]
                    result.existing += len(present)
                    result.inserted += len(new_rows)
                    result.holdout += sum(1 for r in new_rows if r.get("reason") == "holdout")
                    if new_rows:
                        conn.execute(self._insert(table), new_rows)
        return result

    @staticmethod
    def _row(plan: PlannedMessage | PlannedAccrual, now: datetime) -> dict[str, Any]:
        common = {
            "idempotency_key": plan.idempotency_key,
            "campaign_id": plan.campaign_id,
            "business_id": plan.business_id,
            "customer_id": plan.customer_id,
            "payload": json.loads(plan.model_dump_json()),
            "attempts": 0,
            "uncertain": False,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        if isinstance(plan, PlannedMessage):
            held = plan.holdout
            return {
                **common,
                "trigger": plan.trigger,
                "channel": plan.channel.value,
                "recipient": plan.recipient,
                "holdout": held,
                "priority": plan.priority,
                "send_at": plan.send_at,
                "expires_at": plan.expires_at,
                "state": State.skipped.value if held else State.planned.value,
                "reason": "holdout" if held else None,
                "next_attempt_at": None if held else plan.send_at,
            }
        return {
            **common,
            "amount": str(plan.amount),
            "currency": plan.currency,
            "source_event_id": plan.source_event_id,
            "priority": 0,
            "state": State.planned.value,
            "reason": None,
            "next_attempt_at": plan.created_at,
        }

    # -- delivery ------------------------------------------------------------------------------
    def sweep(self, *, now: datetime | None = None) -> int:
        """Planned/failed messages past `expires_at` → skipped (reason `expired`). Returns count.

        Rows in `sending` are left to the claim: their outcome may be unknown.
        """
        now = now or utcnow()
        with self.engine.begin() as conn:
            result = conn.execute(
                update(messages)
                .where(
                    messages.c.state.in_([State.planned.value, State.failed.value]),
                    messages.c.expires_at <= now,
                    or_(messages.c.state == State.planned.value,
                        messages.c.next_attempt_at.is_not(None)),
                )
                .values(state=State.skipped.value, reason="expired", next_attempt_at=None,
                        updated_at=now, version=messages.c.version + 1)
            )  # fmt: skip
        return int(result.rowcount or 0)

    @staticmethod
    def _due(table: Table, now: datetime, run_id: str | None) -> Any:
        # The claim-order index serves this: `next_attempt_at IS NOT NULL` (true of every
        # due row: claims keep it) matches its condition, and `state || ''` keeps SQLite's
        # planner, which has no statistics, from taking the `state` index instead and
        # sorting every due row (the "disqualify a term" idiom of SQLite's planner docs).
        state = table.c.state + ""
        ready = and_(
            state.in_([State.planned.value, State.failed.value]),
            table.c.next_attempt_at <= now,
        )
        abandoned = and_(state == State.sending.value, table.c.lease_until < now)
        if run_id:  # never re-claim a row this very run holds (its lease ran out in a queue)
            abandoned = and_(abandoned, not_(table.c.run_token.startswith(f"{run_id}:")))
        due = and_(table.c.next_attempt_at.is_not(None), or_(ready, abandoned))
        if table is messages:
            # A live row past expiry is swept; a recovered one must still be resolved.
            due = and_(due, or_(table.c.expires_at > now, state == State.sending.value))
        return due

    def claim(
        self, kind: Kind, limit: int, *, run_token: str, lease_s: float,
        now: datetime | None = None,
    ) -> list[OutboxItem]:  # fmt: skip
        """Move up to `limit` due rows to `sending` under `run_token`, committed on return.

        Due: planned/failed with next_attempt_at ≤ now, or sending with an expired lease
        (those come back with `uncertain=True`). Order: priority desc, next_attempt_at.
        `run_token` is `<run_id>:<batch>`; rows of the same run_id are never re-claimed.
        """
        now = now or utcnow()
        table = TABLES[kind]
        run_id = run_token.split(":", 1)[0]
        due = self._due(table, now, run_id)
        order = (table.c.priority.desc(), table.c.next_attempt_at)
        # One UPDATE picks and moves the rows (no key list sent back and forth); `due` is
        # checked again on each row, so a row another claimer took meanwhile is left alone
        # (PostgreSQL re-evaluates the WHERE on the row's latest version).
        picked: Any = select(table.c.idempotency_key).where(due).order_by(*order).limit(limit)
        if self.engine.dialect.name == "postgresql":
            # Concurrent claimers would otherwise pick the same first rows, wait on each
            # other's row locks and come back with none (read as "outbox drained"): SKIP
            # LOCKED makes each take the next unclaimed batch. And PostgreSQL may re-run an
            # IN (… LIMIT n) subquery for each row it updates, which then finds other rows
            # (more than n, out of order): a locking CTE runs exactly once. SQLite claims
            # one at a time (BEGIN IMMEDIATE) and runs the subquery once.
            picked = select(picked.with_for_update(skip_locked=True).cte("picked"))
        else:
            picked = picked.scalar_subquery()
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(table)
                .where(table.c.idempotency_key.in_(picked), due)
                .values(
                    state=State.sending.value,
                    run_token=run_token,
                    claimed_at=now,
                    lease_until=now + timedelta(seconds=lease_s),
                    attempts=table.c.attempts + 1,
                    uncertain=case(
                        (table.c.state == State.sending.value, True), else_=table.c.uncertain
                    ),
                    updated_at=now,
                    version=table.c.version + 1,
                )
            )
            if not moved.rowcount:
                return []
            cols = [table.c.idempotency_key, table.c.payload, table.c.uncertain,
                    table.c.attempts]  # fmt: skip
            cols.append(table.c.channel if kind == "message" else table.c.currency)
            # run_token is unique per claim; `state` is indexed, so only in-flight rows are read.
            rows = conn.execute(
                select(*cols)
                .where(table.c.state == State.sending.value, table.c.run_token == run_token)
                .order_by(*order)
            ).all()
        return [
            OutboxItem(
                key=r[0],
                kind=kind,
                channel=r[4] if kind == "message" else "ledger",
                payload=r[1],
                uncertain=bool(r[2]),
                attempts=int(r[3]),
            )
            for r in rows
        ]

    def complete(
        self, kind: Kind, completions: Sequence[Completion], *, now: datetime | None = None
    ) -> int:
        """Commit results in one transaction; a row is only updated by the claim owning it.

        Returns how many rows were updated (fewer if another run took a row over).
        """
        if not completions:
            return 0
        now = now or utcnow()
        table = TABLES[kind]
        stmt = (
            update(table)
            .where(
                table.c.idempotency_key == bindparam("b_key"),
                table.c.run_token == bindparam("b_token"),
                table.c.state == State.sending.value,
            )
            .values(
                {
                    "state": bindparam("b_state"),
                    "reason": bindparam("b_reason"),
                    "provider": bindparam("b_provider"),
                    REF_COLUMN[kind]: bindparam("b_ref"),
                    "error_code": bindparam("b_code"),
                    "last_error": bindparam("b_error"),
                    "next_attempt_at": bindparam("b_next", type_=UTCDateTime),
                    "uncertain": bindparam("b_uncertain"),
                    "sent_at": bindparam("b_sent", type_=UTCDateTime),
                    "lease_until": null(),  # a literal: no parameter to process per row
                    "updated_at": now,
                    "version": table.c.version + 1,
                    "attempts": table.c.attempts - bindparam("b_refund"),
                }
            )
        )
        params = [
            {
                "b_key": c.key,
                "b_token": c.run_token,
                "b_state": c.state.value,
                "b_reason": c.reason,
                "b_provider": c.provider,
                "b_ref": c.provider_ref,
                "b_code": c.error_code,
                "b_error": (c.last_error or "")[:2000] or None,
                "b_next": c.next_attempt_at,
                "b_uncertain": c.uncertain,
                "b_sent": c.sent_at,
                "b_refund": int(c.refund_attempt),
            }
            for c in completions
        ]
        with self.engine.begin() as conn:
            result = conn.execute(stmt, params)
        return int(result.rowcount or 0)

    # -- dead letters ---------------------------------------------------------------------------
    def requeue(self, keys: Iterable[str], *, now: datetime | None = None) -> list[str]:
        """Move dead rows back to `planned`, due now, with their attempts reset.

        Only rows in `dead` are touched (a key that is not dead, or unknown, is left as
        it is and not returned): a sent row can never be re-sent this way. The row keeps
        its key, so providers still deduplicate it, and its `uncertain` flag, so a row
        whose last outcome was unknown is still looked up before it is sent again. The
        requeue is recorded on the row: reason `requeued`, and `last_error` says when and
        what the dead row's last error was. A message past `expires_at` is swept to
        `skipped`/`expired` by the next delivery instead of being sent late.

        Returns the keys requeued, sorted.
        """
        wanted = sorted(set(keys))
        if not wanted:
            return []
        now = now or utcnow()
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        done: list[str] = []
        with self.engine.begin() as conn:
            for table in TABLES.values():
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    dead = and_(
                        table.c.idempotency_key.in_(chunk), table.c.state == State.dead.value
                    )
                    rows = conn.execute(
                        select(table.c.idempotency_key, table.c.attempts, table.c.error_code,
                               table.c.last_error).where(dead)
                    ).all()  # fmt: skip
                    for key, attempts, code, error in rows:
                        note = (
                            f"requeued {stamp} after {attempts} attempt(s), was dead: "
                            f"{code or '-'} {error or ''}"
                        ).strip()
                        conn.execute(
                            update(table)
                            .where(table.c.idempotency_key == key,
                                   table.c.state == State.dead.value)
                            .values(state=State.planned.value, reason="requeued", attempts=0,
                                    next_attempt_at=now, lease_until=null(), run_token=null(),
                                    claimed_at=null(), last_error=note[:2000], updated_at=now,
                                    version=table.c.version + 1)
                        )  # fmt: skip
                        done.append(key)
        return sorted(done)

    # -- reading -------------------------------------------------------------------------------
    def counts(self) -> dict[str, dict[str, int]]:
        """`{kind: {state: rows}}`."""
        out: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for kind, table in TABLES.items():
                rows = conn.execute(
                    select(table.c.state, func.count()).group_by(table.c.state)
                ).all()
                out[kind] = {state: int(n) for state, n in rows}
        return out

    def rows(
        self, kind: Kind, *, keys: Iterable[str] | None = None, state: State | None = None,
        since: datetime | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Rows as dicts (all columns), optionally filtered; `since` compares updated_at."""
        table = TABLES[kind]
        query = select(table)
        if keys is not None:
            query = query.where(table.c.idempotency_key.in_(list(keys)))
        if state is not None:
            query = query.where(table.c.state == state.value)
        if since is not None:
            query = query.where(table.c.updated_at >= since)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(table.c.idempotency_key))]

    def confirmed_accruals(self) -> list[dict[str, Any]]:
        """Accruals the ledger confirmed: state `sent` with a ledger entry id."""
        return [r for r in self.rows("accrual", state=State.sent) if r["ledger_entry_id"]]
