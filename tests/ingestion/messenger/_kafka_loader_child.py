"""``python -m tests.ingestion.messenger._kafka_loader_child DSN CONFIG_JSON STOP_AT``.

Runs the real Kafka loader (`load_topic`) in its own process for the crash tests. With
``STOP_AT`` = ``before_insert`` or ``before_commit`` it prints ``STOPPED <point> <batch id>``
at that point of the first batch and blocks there until the parent SIGKILLs it; with
``none`` it loads to the end and prints ``DONE <rows loaded>``.
"""

from __future__ import annotations

import sys
import threading

from ingestion.config import KafkaConfig
from ingestion.messenger.kafka import load_topic
from warehouse.client import connect


def main() -> None:
    dsn, config_json, stop_at = sys.argv[1:4]
    config = KafkaConfig.model_validate_json(config_json)

    def stop(point: str, detail: str) -> None:
        if stop_at == point:
            print(f"STOPPED {point} {detail}", flush=True)
            threading.Event().wait()  # until SIGKILL

    with connect(dsn) as client:
        results = load_topic(
            client,
            config,
            before_insert=lambda batch_id: stop("before_insert", batch_id),
            before_commit=lambda result: stop("before_commit", result.batch_id),
        )
    print(f"DONE {sum(r.rows_loaded for r in results)}", flush=True)


if __name__ == "__main__":
    main()
