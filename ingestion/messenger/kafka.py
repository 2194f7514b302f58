"""Webhooks through Kafka: the receiver's Kafka sink and the topic → ``raw.messenger_events``
loader.

Selected by ``ReceiverConfig.kafka`` (settings: ``REVISIT_WEBHOOK_SINK=kafka``,
``REVISIT_KAFKA_BOOTSTRAP``, ``REVISIT_KAFKA_TOPIC``). Client: confluent-kafka (librdkafka).

Message format: the value is one spool record line (`ingestion.messenger.spool.encode_record`:
provider, receive time, CRC32 and the raw signed body in base64), no key (records spread over
the partitions; order does not matter, staging orders events by their own time).

Durability contract, as the spool's: :meth:`KafkaSink.append` returns only once the broker
acknowledged the record with ``acks=all``, so the receiver answers 200
only for a webhook the topic holds; a delivery error or no acknowledgement within
``delivery_timeout_ms`` raises and the receiver answers 503 (the provider retries). The
producer is not idempotent: a retried produce request may store a record twice, which the
loader drops like any duplicate.
Concurrent requests within ``linger_ms`` share one produce request: each waits for its own
acknowledgement.

Loading, exactly once (:func:`load_topic`): read every partition from the loader group's
committed offset until the broker says it is at the end, in batches of ``batch_max``
records; for each batch insert the events (`warehouse.load.load_batch`), *then* commit the
offsets. A crash between the insert and the commit re-reads the batch on the next run; what
it inserted again is dropped before the insert: events whose ``(provider, event_id)`` is
already in ``raw.messenger_events`` and quarantine rows whose ``row_ref``
(``<partition>@<offset>[/path]``) is already in ``raw.quarantine`` for the topic. Duplicate
events within one batch keep the last one. So a redelivered batch adds nothing, and a
provider's duplicate webhook adds no second row either.

One loader per topic at a time: it assigns itself every partition (no group rebalance, which
costs a join delay per run and buys nothing for a bounded batch job); in embedded mode the
warehouse lock already makes it one process.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ingestion.config import KafkaConfig
from ingestion.messenger.spool import SpoolRecordError, decode_record, encode_record

if TYPE_CHECKING:
    import pandas as pd
    from clickhouse_connect.driver.client import Client
    from confluent_kafka import Message

    from warehouse.load import LoadResult

log = logging.getLogger(__name__)

SOURCE_KIND = "messenger_webhook"
TABLE = "messenger_events"


class KafkaDeliveryError(RuntimeError):
    """The broker did not acknowledge a record (error or timeout): the webhook is not kept."""


def producer_settings(config: KafkaConfig) -> dict[str, Any]:
    """librdkafka settings of the receiver's producer."""
    return {
        "bootstrap.servers": config.bootstrap,
        "client.id": "revisit-webhook-receiver",
        # Every in-sync replica has the record before the broker acknowledges it.
        "acks": "all",
        # Not idempotent: a retried produce may write a record twice, which the loader drops
        # (it deduplicates by event id, as it must for the providers' own retries). An
        # idempotent producer that lost its broker could stall in its epoch-bump recovery,
        # answering 503 for good, after a broker restart (seen against Tansu).
        "enable.idempotence": False,
        "linger.ms": config.linger_ms,
        "message.timeout.ms": config.delivery_timeout_ms,
        # Back to a broker that restarted within a second, not librdkafka's 10 s backoff cap:
        # until then every webhook is answered 503.
        "reconnect.backoff.max.ms": 1000,
        **config.options,
    }


def consumer_settings(config: KafkaConfig) -> dict[str, Any]:
    """librdkafka settings of the loader's consumer (offsets committed by hand only)."""
    return {
        "bootstrap.servers": config.bootstrap,
        "client.id": "revisit-webhook-loader",
        "group.id": config.group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        **config.options,
    }


class KafkaSink:
    """The receiver's sink when webhooks go to Kafka (the `Spool` interface: start, append,
    close, `batches`, `records_written`)."""

    kind = "kafka"
    current_segment = None

    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        self.batches = 0  # poll rounds that delivered at least one acknowledgement
        self.records_written = 0  # records the broker acknowledged
        self.failures = 0
        self._producer: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    async def start(self) -> None:
        from confluent_kafka import Producer

        # Broker errors go to the log (librdkafka reconnects by itself), not to stderr.
        self._producer = Producer(
            {**producer_settings(self.config), "error_cb": self._on_error, "logger": log}
        )
        self._stopping.clear()
        # Delivery reports are only served by poll(): a thread keeps polling so that each
        # waiting request learns its outcome as soon as the broker answers.
        self._thread = threading.Thread(target=self._poll, name="kafka-sink-poll", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        producer = self._producer
        while not self._stopping.is_set():
            if producer.poll(0.05):
                self.batches += 1

    @staticmethod
    def _on_error(error: Any) -> None:
        log.warning("kafka producer: %s", error)

    async def append(self, provider: str, body: bytes) -> None:
        """Return once the broker acknowledged the record; KafkaDeliveryError otherwise."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle(error: Any) -> None:
            if done.done():
                return
            if error is None:
                self.records_written += 1
                done.set_result(None)
            else:
                self.failures += 1
                done.set_exception(KafkaDeliveryError(str(error)))

        def on_delivery(error: Any, _message: Any) -> None:  # runs in the poll thread
            loop.call_soon_threadsafe(settle, error)

        record = encode_record(provider, body, time.time_ns() // 1_000_000)
        try:
            self._producer.produce(self.config.topic, value=record, on_delivery=on_delivery)
        except BufferError as exc:  # the local queue is full: the broker is not keeping up
            self.failures += 1
            raise KafkaDeliveryError(f"producer queue full: {exc}") from None
        # librdkafka fails the record itself after message.timeout.ms; the extra second only
        # guards against a report that never comes.
        try:
            await asyncio.wait_for(done, self.config.delivery_timeout_ms / 1000 + 1.0)
        except TimeoutError:
            self.failures += 1
            raise KafkaDeliveryError("no delivery report in time") from None

    async def close(self) -> None:
        """Wait for records still in flight (their requests are waiting), stop polling."""
        if self._producer is None:
            return
        producer, self._producer = self._producer, None
        await asyncio.to_thread(producer.flush, self.config.delivery_timeout_ms / 1000)
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None


def ensure_topic(config: KafkaConfig, partitions: int = 1, replication: int = 1) -> None:
    """Create the topic if the broker does not have it (deployments create it with their own
    partition count and replication; this is for development brokers)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": config.bootstrap, **config.options})
    futures = admin.create_topics([NewTopic(config.topic, partitions, replication)])
    try:
        futures[config.topic].result(timeout=10)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


# -- loading --------------------------------------------------------------------------------


def _source(config: KafkaConfig) -> str:
    return f"kafka:{config.topic}"


def parse_messages(messages: list[Message]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events frame in EVENT_COLUMNS + ``_row`` = offset, quarantine frame) for a batch.

    Row references are ``<partition>@<offset>`` (plus the path inside the body for a bad
    part), unique within the topic: they identify a quarantined part across redeliveries.
    """
    from ingestion.messenger.events import Rejected, record_events
    from ingestion.messenger.loader import _events_frame, _quarantine_frame

    rows: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    for message in messages:
        ref = f"{message.partition()}@{message.offset()}"
        raw = message.value() or b""
        try:
            record = decode_record(raw, line=message.offset() + 1)
        except SpoolRecordError as exc:
            rejected.append(Rejected(ref, "record", str(exc), raw.decode("utf-8", "replace")))
            continue
        events, bad = record_events(record, ref)
        for event in events:
            event["_row"] = message.offset()
        rows.extend(events)
        rejected.extend(bad)
    return _events_frame(rows), _quarantine_frame(rejected)


def _drop_loaded(
    client: Client,
    config: KafkaConfig,
    batch_id: str,
    events: pd.DataFrame,
    quarantine: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What of a batch is not in the warehouse yet (the anti-join of the module doc).

    Rows of `batch_id` itself do not count: a load of the same batch that died half-way is
    deleted and redone by `load_batch`, so its rows must be loaded again.
    """
    events = events.drop_duplicates(["provider", "event_id"], keep="last")
    if len(events):
        have = client.query(
            "SELECT provider, event_id FROM raw.messenger_events "
            "WHERE event_id IN {ids:Array(String)} AND _batch_id != {b:String}",
            parameters={"ids": sorted(set(events["event_id"])), "b": batch_id},
        ).result_rows
        if have:
            loaded = {(provider, event_id) for provider, event_id in have}
            keys = zip(events["provider"], events["event_id"], strict=True)
            events = events[[key not in loaded for key in keys]]
    if len(quarantine):
        have = client.query(
            "SELECT row_ref FROM raw.quarantine WHERE source_kind = {k:String} "
            "AND _source = {s:String} AND row_ref IN {refs:Array(String)} "
            "AND _batch_id != {b:String}",
            parameters={
                "b": batch_id,
                "k": SOURCE_KIND,
                "s": _source(config),
                "refs": sorted(set(quarantine["row_ref"])),
            },
        ).result_rows
        if have:
            quarantine = quarantine[~quarantine["row_ref"].isin({ref for (ref,) in have})]
    return events, quarantine


def load_topic(
    client: Client,
    config: KafkaConfig,
    *,
    before_insert: Callable[[str], None] | None = None,
    before_commit: Callable[[LoadResult], None] | None = None,
    idle_timeout_s: float = 30.0,
) -> list[LoadResult]:
    """Load the topic into ``raw.messenger_events`` up to the end of each partition, once.

    One LoadResult per batch (batch id ``kafka:<topic>:<partition>@<first>-<last>,…``).
    `before_insert(batch_id)` / `before_commit(result)` are called at those two points of
    every batch (progress reporting; the crash tests stop the process there). Raises
    KafkaDeliveryError if the broker stops answering for `idle_timeout_s` before the end is
    reached (what was loaded and committed until then stays).
    """
    from confluent_kafka import (
        OFFSET_BEGINNING,
        Consumer,
        KafkaError,
        KafkaException,
        TopicPartition,
    )

    from warehouse.load import prepare_raw

    prepare_raw(client)
    # End of partition is told by the fetch responses (EOF events), not by a ListOffsets
    # look-up: Tansu answers the latter with the last *batch's* base offset + 1.
    consumer = Consumer({**consumer_settings(config), "enable.partition.eof": True, "logger": log})
    results: list[LoadResult] = []
    try:
        metadata = consumer.list_topics(config.topic, timeout=10)
        topic = metadata.topics.get(config.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            log.info("kafka topic %s: not there yet, nothing to load", config.topic)
            return results
        partitions = [TopicPartition(config.topic, p) for p in sorted(topic.partitions)]
        consumer.assign(
            [
                TopicPartition(config.topic, tp.partition, tp.offset if tp.offset >= 0 else
                               OFFSET_BEGINNING)
                for tp in consumer.committed(partitions, timeout=10)
            ]
        )  # fmt: skip
        pending = {tp.partition for tp in partitions}
        idle_since = time.monotonic()
        while pending:
            batch: list[Message] = []
            while pending and len(batch) < config.batch_max:
                polled = consumer.consume(config.batch_max - len(batch), 0.2)
                if not polled:
                    if batch:
                        break  # load what arrived rather than wait for a full batch
                    if time.monotonic() - idle_since > idle_timeout_s:
                        raise KafkaException(
                            f"no records from {config.bootstrap} for {idle_timeout_s:.0f} s; "
                            f"partitions {sorted(pending)} not at their end"
                        )
                    continue
                idle_since = time.monotonic()
                for message in polled:
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            pending.discard(message.partition())
                        else:
                            log.warning("kafka topic %s: %s", config.topic, error)
                        continue
                    if message.partition() in pending:  # else: arrived after its end, next run
                        batch.append(message)
            if not batch:
                continue
            results.append(_load_messages(client, config, batch, before_insert, before_commit))
            last = {m.partition(): m.offset() for m in batch}
            consumer.commit(
                offsets=[TopicPartition(config.topic, p, o + 1) for p, o in sorted(last.items())],
                asynchronous=False,
            )
    finally:
        consumer.close()
    return results


def _load_messages(
    client: Client,
    config: KafkaConfig,
    batch: list[Message],
    before_insert: Callable[[str], None] | None,
    before_commit: Callable[[LoadResult], None] | None,
) -> LoadResult:
    from warehouse.load import load_batch

    ranges: dict[int, list[int]] = {}
    for message in batch:
        first_last = ranges.setdefault(message.partition(), [message.offset(), message.offset()])
        first_last[1] = message.offset()
    batch_id = f"{_source(config)}:" + ",".join(
        f"{p}@{first}-{last}" for p, (first, last) in sorted(ranges.items())
    )
    events, quarantine = parse_messages(batch)
    events, quarantine = _drop_loaded(client, config, batch_id, events, quarantine)
    if before_insert is not None:
        before_insert(batch_id)
    result = load_batch(
        client, TABLE, events, batch_id=batch_id, source=_source(config), quarantine=quarantine
    )
    if result.rows_quarantined:
        log.warning(
            "kafka batch %s: %d part(s) quarantined (raw.quarantine, source_kind=%s)",
            batch_id,
            result.rows_quarantined,
            SOURCE_KIND,
        )
    if before_commit is not None:
        before_commit(result)
    return result
