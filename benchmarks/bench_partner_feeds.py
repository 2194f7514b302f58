"""Partner feed loading throughput: N events per format (canonical JSON lines, the
Russian CSV export, nested JSON in minor units) parsed, normalised, validated and
loaded into a temporary embedded warehouse. Prints one JSON line: median seconds and
events/s per format over `--runs` runs, plus the machine size.

    .venv/bin/python -m benchmarks.bench_partner_feeds --events 20000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import warehouse
from ingestion.partners import load_partner_feeds, load_registry
from revisit.settings import DEV_ID_KEY

_TYPES = ("accrual", "redemption", "reversal", "target_action")
_RU_TYPES = ("Начисление", "Списание", "Отмена", "Целевое действие")


def _phone(i: int) -> str:
    return f"+7916{i % 10_000_000:07d}"


def write_feeds(partners: Path, n: int) -> None:
    (partners / "p1").mkdir(parents=True)
    with open(partners / "p1" / "events_1.jsonl", "w") as out:
        for i in range(n):
            record = {
                "event_id": f"e{i}", "partner_id": "p1", "event_type": _TYPES[i % 4],
                "phone": _phone(i), "amount": f"{i % 5000}.{i % 100:02d}", "currency": "RUB",
                "occurred_at": f"2024-03-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
                "offer_id": f"o{i % 50}",
            }  # fmt: skip
            out.write(json.dumps(record) + "\n")
    (partners / "p2").mkdir()
    lines = ["Номер операции;Тип;Телефон;Сумма;Валюта;Дата;Акция"]
    for i in range(n):
        phone = f"8 (916) {i % 10_000_000:07d}"
        lines.append(
            f"r{i};{_RU_TYPES[i % 4]};{phone};{i % 5000},{i % 100:02d};RUB;"
            f"{1 + i % 28:02d}.03.2024 {i % 24:02d}:{i % 60:02d};o{i % 50}"
        )
    (partners / "p2" / "export_1.csv").write_bytes(("\ufeff" + "\r\n".join(lines)).encode())
    (partners / "p3").mkdir()
    items = [
        {
            "id": f"n{i}",
            "kind": ("earn", "burn", "cancel", "action")[i % 4],
            "customer": {"msisdn": f"7701{i % 10_000_000:07d}"},
            "money": {"amount_minor": i * 7, "currency": "KZT"},
            "ts": 1_709_287_200 + i,
            "promo": {"id": f"o{i % 50}"},
        }
        for i in range(n)
    ]
    (partners / "p3" / "batch_1.json").write_text(json.dumps({"batch": {"id": 1}, "items": items}))


def run_once(n: int) -> dict[str, float]:
    registry = load_registry()
    with tempfile.TemporaryDirectory() as tmp:
        partners = Path(tmp) / "src" / "partners"
        write_feeds(partners, n)
        timings: dict[str, float] = {}
        with warehouse.connect(f"chdb://{tmp}/wh") as client:
            for partner_id in ("p1", "p2", "p3"):
                sub = {partner_id: registry[partner_id]}
                started = time.perf_counter()
                results, errors = load_partner_feeds(client, partners, sub, id_key=DEV_ID_KEY)
                timings[partner_id] = time.perf_counter() - started
                loaded = sum(r.rows_loaded for r in results)
                if loaded != n:
                    raise RuntimeError(f"{partner_id}: loaded {loaded} of {n} ({errors})")
    return timings


def _memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000, help="events per format")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    runs = [run_once(args.events) for _ in range(args.runs)]
    names = {"p1": "canonical_jsonl", "p2": "delimited_csv", "p3": "nested_json_minor"}
    result: dict[str, object] = {
        "bench": "partner_feeds",
        "events_per_format": args.events,
        "runs": args.runs,
        "cpu_count": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
    }
    for partner_id, name in names.items():
        median = statistics.median(r[partner_id] for r in runs)
        result[f"{name}_median_s"] = round(median, 3)
        result[f"{name}_events_per_s"] = round(args.events / median)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
