"""Fixtures: real provider stand-ins on 127.0.0.1, a real outbox in tmp (SQLite, or each
state store: SQLite and PostgreSQL), plan makers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from activation.contracts import Channel, PlannedAccrual, PlannedMessage, idempotency_key
from activation.outbox import Outbox
from activation.providers import ProvidersConfig
from simulation.providers import StandinCluster, run_standins

NOW = datetime.now(UTC)


@pytest.fixture(scope="session")
def jsonl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("standin-log")


@pytest.fixture(scope="session")
def _cluster(jsonl_dir: Path) -> Iterator[StandinCluster]:
    with run_standins(jsonl_dir=jsonl_dir) as cluster:
        yield cluster


@pytest.fixture
def standins(_cluster: StandinCluster) -> Iterator[StandinCluster]:
    """The session's stand-ins, reset (requests, effects, faults) for each test."""
    _cluster.reset()
    yield _cluster
    _cluster.reset()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(f"sqlite:///{tmp_path / 'state' / 'outbox.db'}")
    yield box
    box.dispose()


@pytest.fixture
def store_outbox(state_dsn: str) -> Iterator[Outbox]:
    """An outbox on each state store (SQLite file, fresh PostgreSQL database): modules
    that must hold on both take it as their `outbox`."""
    box = Outbox(state_dsn)
    yield box
    box.dispose()


def fast_config(cluster: StandinCluster, **overrides: Any) -> ProvidersConfig:
    """Stand-in config with rate limits off and test-sized timeouts/backoffs."""
    values: dict[str, Any] = {
        "http_timeout_s": 2.0,
        "backoff_base_s": 0.02,
        "backoff_max_s": 0.1,
        "retry_later_s": 0.0,
        "concurrency": 16,
        "claim_batch": 64,
    }
    values.update(overrides)
    return (
        cluster.providers_config(**values)
        .without_rate_limits()
        .model_copy(update={k: v for k, v in overrides.items() if k.endswith("_rate_per_s")})
    )


def message(
    i: int, channel: Channel = Channel.whatsapp, *, holdout: bool = False,
    expires_at: datetime | None = None, trigger: str = "winback", occasion: str = "2026-W47",
) -> PlannedMessage:  # fmt: skip
    customer = f"cust{i:06d}"
    phone = f"+7916{i:07d}"
    recipient = str(100_000 + i) if channel is Channel.telegram else phone
    return PlannedMessage(
        idempotency_key=idempotency_key(trigger, "B00001", customer, occasion),
        campaign_id=f"{trigger}-B00001-{occasion}",
        trigger=trigger,
        business_id="B00001",
        customer_id=customer,
        phone_e164=phone,
        channel=channel,
        recipient=recipient,
        template="winback_v1",
        variables={"name": f"Client {i}", "discount": "10%"},
        text=f"Client {i}, we miss you: 10% off this week",
        send_at=NOW - timedelta(minutes=5),
        expires_at=expires_at or NOW + timedelta(days=2),
        holdout=holdout,
    )


def accrual(i: int, amount: str = "12.30", *, event: str | None = None) -> PlannedAccrual:
    customer = f"cust{i:06d}"
    source = event or f"P0001:ev{i:06d}"
    return PlannedAccrual(
        idempotency_key=idempotency_key("accrual", "P0001", customer, f"accrual:{source}"),
        campaign_id="accrual-P0001-2026-11",
        business_id="P0001",
        customer_id=customer,
        phone_e164=f"+7916{i:07d}",
        amount=Decimal(amount),
        currency="RUB",
        source_event_id=source,
        created_at=NOW - timedelta(minutes=1),
    )


def mixed_plans(n_messages: int, n_accruals: int) -> list[PlannedMessage | PlannedAccrual]:
    channels = [Channel.whatsapp, Channel.telegram, Channel.sms]
    plans: list[PlannedMessage | PlannedAccrual] = [
        message(i, channels[i % 3]) for i in range(n_messages)
    ]
    plans += [accrual(i) for i in range(n_accruals)]
    return plans


def all_effects(cluster: StandinCluster) -> dict[str, int]:
    """`{key: effects}` over every stand-in (keys are unique across providers)."""
    out: dict[str, int] = {}
    for provider in ("whatsapp", "telegram", "sms", "ledger"):
        for key, n in cluster.admin(provider).effects().items():
            out[key] = out.get(key, 0) + n
    return out
