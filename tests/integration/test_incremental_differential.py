"""Differential property test: incremental dbt marts equal a `--full-refresh` build.

Hypothesis generates change sequences of one small world each (a business, its CRM
customers and appointments, a partner's cashback events, trigger sends): inserts,
updates, status reversals (completed → cancelled → completed), late records whose
`updated_at` is older than what was loaded, CRM soft deletes (`deleted: true`, see
ingestion/SOURCES.md) and restores, phone changes, exact re-deliveries (duplicates),
out-of-order partner events, and WhatsApp status webhooks delivered twice, out of order
or before their send. Every sequence owns its ids (business `diff-<n>`, its customers'
phones, event and message ids), so all of them run side by side: step k of every
sequence is one load through the real ingestion code (CRM field map and loader, the
partner feed adapter, the sends loader, the webhook spool loader), followed by

- an incremental `dbt run` of the marts on the warehouse (A), and
- a `dbt run --full-refresh` of the marts on a copy of it taken after the load (B);

the two run at once (separate data directories, separate processes). Then every table
of the `marts` database must hold the same rows in A and B — compared as multisets of
whole rows, every column included (the load-time bookkeeping `loaded_at` is derived
from the raw rows, so it must agree too). Floats are compared to 9 significant digits:
the two builds may sum in another order.

`DIFFERENTIAL_SEQUENCES` (default 200) sets how many sequences run; e.g.
`DIFFERENTIAL_SEQUENCES=1000` for a longer run outside CI. The draw is derandomized, so
a run is reproducible; a failure names the sequence, the step, its operations and the
differing rows.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

import warehouse
from ingestion.crm.api import load_page
from ingestion.crm.mapping import load_field_map
from ingestion.identity import customer_ids
from ingestion.messages import load_message_sends
from ingestion.messenger.loader import load_segment
from ingestion.messenger.spool import CLOSED_SUFFIX, encode_record
from ingestion.partners.load import load_partner_file
from ingestion.partners.offers import load_offers
from ingestion.partners.registry import PartnerConfig
from revisit.settings import DEV_ID_KEY
from warehouse.config import DbtConfig
from warehouse.dbt_runner import run_dbt
from warehouse.load import LoadResult, prepare_raw

pytestmark = pytest.mark.slow

SEQUENCES = int(os.environ.get("DIFFERENTIAL_SEQUENCES", "200"))
STEPS = 5  # loads after the initial one; every one is followed by both builds
AS_OF = "2026-03-01"
T0 = datetime(2026, 2, 1, 9, tzinfo=UTC)
CUSTOMERS, PHONES, APPOINTMENTS, EVENTS, MESSAGES = 3, 3, 4, 4, 3
PARTNER = PartnerConfig(partner_id="pdiff", adapter="canonical_jsonl", currency="RUB")
# Lookback 0: every incremental run relies on its watermark alone (the default lookback
# re-reads the last minutes of loads, which would hide a wrong watermark here).
DBT_VARS = json.dumps({"as_of_date": AS_OF, "incremental_lookback_seconds": 0})
MARTS = "path:dbt_project/models/marts"
TAG = re.compile(r"diff-(\d{5})")

# --- the change sequences ----------------------------------------------------------------

customer_op = st.fixed_dictionaries(
    {
        "op": st.just("customer"),
        "customer": st.integers(0, CUSTOMERS - 1),
        "phone": st.integers(0, PHONES - 1),  # another phone: another customer_id
        "deleted": st.booleans(),
    }
)
appointment_op = st.fixed_dictionaries(
    {
        "op": st.just("appointment"),
        "appointment": st.integers(0, APPOINTMENTS - 1),
        "customer": st.integers(0, CUSTOMERS - 1),
        "status": st.sampled_from(["completed", "cancelled", "scheduled", "no_show"]),
        "amount": st.one_of(st.none(), st.integers(0, 500_000)),  # minor units
        # Hours around the step's clock: negative is a late record, older than loaded.
        "updated_shift_h": st.integers(-72, 24),
        "deleted": st.booleans(),
    }
)
redelivery_op = st.fixed_dictionaries(
    {
        "op": st.just("redeliver"),
        "entity": st.sampled_from(["appointments", "customers"]),
        "index": st.integers(0, APPOINTMENTS - 1),
    }
)
partner_op = st.fixed_dictionaries(
    {
        "op": st.just("partner_event"),
        "event": st.integers(0, EVENTS - 1),  # the same id again: a corrected re-delivery
        "type": st.sampled_from(["accrual", "reversal", "redemption", "target_action"]),
        "amount": st.integers(0, 100_000),
        "customer": st.integers(0, CUSTOMERS - 1),
        "occurred_shift_h": st.integers(-240, 0),  # out of order
        "with_offer": st.booleans(),
    }
)
send_op = st.fixed_dictionaries(
    {
        "op": st.just("send"),
        "message": st.integers(0, MESSAGES - 1),
        "customer": st.integers(0, CUSTOMERS - 1),
        "holdout": st.booleans(),
        "planned_day": st.integers(-20, 25),
        "with_offer": st.booleans(),
    }
)
# A WhatsApp status webhook for one of the sequence's messages, possibly before its send
# was loaded (an event naming no send yet), out of order (`shift_h`) and delivered twice.
status_op = st.fixed_dictionaries(
    {
        "op": st.just("status"),
        "message": st.integers(0, MESSAGES - 1),
        "status": st.sampled_from(["sent", "delivered", "read", "failed"]),
        "shift_h": st.integers(-48, 48),
        "copies": st.integers(1, 2),
    }
)
operation = st.one_of(
    customer_op, appointment_op, appointment_op, redelivery_op, partner_op, send_op, status_op
)
sequence_strategy = st.lists(
    st.lists(operation, max_size=4), min_size=STEPS + 1, max_size=STEPS + 1
)


def draw_sequences(count: int) -> list[list[list[dict[str, Any]]]]:
    """`count` distinct sequences from Hypothesis's generator (derandomized: the same
    ones every run), of STEPS + 1 steps each, a step being a list of operations."""
    drawn: list[list[list[dict[str, Any]]]] = []

    @hypothesis_settings(
        max_examples=count,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(sequence_strategy)
    def collect(sequence: list[list[dict[str, Any]]]) -> None:
        drawn.append(sequence)

    collect()
    assert len(drawn) >= count, f"Hypothesis drew {len(drawn)} sequences, wanted {count}"
    return drawn[:count]


# --- one sequence's world: ids, phones and the records of its operations ----------------


def business_id(seq: int) -> str:
    return f"diff-{seq:05d}"


def phone(seq: int, customer: int, variant: int) -> str:
    return f"+7916{seq:05d}{customer * PHONES + variant:02d}"


def customer_hash(phone_e164: str) -> str:
    return customer_ids([phone_e164], DEV_ID_KEY)[0]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class World:
    """The state of one sequence as its CRM knows it, turning operations into records
    in the sources' own formats (CRM API JSON, canonical partner events, sends)."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.business = business_id(seq)
        self.phone_of = {c: 0 for c in range(CUSTOMERS)}
        self.sent: dict[tuple[str, int], dict[str, Any]] = {}
        self.recipient: dict[int, str] = {}  # message → the phone its send went to

    def ident(self, kind: str, index: int) -> str:
        return f"{self.business}-{kind}{index}"

    def records(self, step: int, ops: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {
            "customers": [], "appointments": [], "partner_events": [], "sends": [],
            "webhooks": [],
        }  # fmt: skip
        clock = T0 + timedelta(days=2 * step)
        for op in ops:
            kind = op["op"]
            if kind == "customer":
                c = op["customer"]
                self.phone_of[c] = op["phone"]
                record = {
                    "id": self.ident("c", c),
                    "business_id": self.business,
                    "phone": phone(self.seq, c, op["phone"]),
                    "name": f"Client {c}",
                    "birthday": None,
                    "gender": "f",
                    "marketing_consent": True,
                    "created_at": iso(T0 - timedelta(days=30)),
                    "updated_at": iso(clock),
                    "deleted": op["deleted"],
                }
                self.sent[("customers", c)] = record
                out["customers"].append(record)
            elif kind == "appointment":
                a = op["appointment"]
                amount = op["amount"]
                record = {
                    "id": self.ident("a", a),
                    "business_id": self.business,
                    "client_id": self.ident("c", op["customer"]),
                    "location_id": "l1",
                    "service_id": "s1",
                    "status": op["status"],
                    "start_at": iso(T0 + timedelta(days=a, hours=3)),
                    "amount": None if amount is None else f"{amount // 100}.{amount % 100:02d}",
                    "currency": "RUB",
                    "promo_offer_id": self.ident("o", 0) if a == 0 else None,
                    "created_at": iso(T0 - timedelta(days=7)),
                    "updated_at": iso(clock + timedelta(hours=op["updated_shift_h"])),
                    "deleted": op["deleted"],
                }
                self.sent[("appointments", a)] = record
                out["appointments"].append(record)
            elif kind == "redeliver":
                index = op["index"] % (CUSTOMERS if op["entity"] == "customers" else APPOINTMENTS)
                previous = self.sent.get((op["entity"], index))
                if previous is not None:  # the very same record once more
                    out[op["entity"]].append(dict(previous))
            elif kind == "partner_event":
                c = op["customer"]
                out["partner_events"].append(
                    {
                        "event_id": self.ident("e", op["event"]),
                        "event_type": op["type"],
                        "phone": phone(self.seq, c, self.phone_of[c]),
                        "amount": f"{op['amount'] // 100}.{op['amount'] % 100:02d}",
                        "currency": "RUB",
                        "occurred_at": iso(clock + timedelta(hours=op["occurred_shift_h"])),
                        "offer_id": self.ident("o", 0) if op["with_offer"] else None,
                    }
                )
            elif kind == "status":
                m = op["message"]
                moment = clock + timedelta(hours=op["shift_h"])
                status = {
                    "id": f"wamid.{m}{self.seq}",
                    "status": op["status"],
                    "timestamp": str(int(moment.timestamp())),
                    "recipient_id": self.recipient.get(m, phone(self.seq, 0, 0)).lstrip("+"),
                    "biz_opaque_callback_data": self.ident("m", m),
                }
                if op["status"] == "failed":
                    status["errors"] = [{"code": 131026, "title": "Message undeliverable"}]
                body = {
                    "object": "whatsapp_business_account",
                    "entry": [{"id": "waba", "changes": [
                        {"field": "messages", "value": {"statuses": [status]}}
                    ]}],
                }  # fmt: skip
                out["webhooks"] += [body] * op["copies"]
            elif kind == "send":
                c, m = op["customer"], op["message"]
                self.recipient[m] = phone(self.seq, c, self.phone_of[c])
                out["sends"].append(
                    {
                        "message_id": self.ident("m", m),
                        "business_id": self.business,
                        "customer_phone": phone(self.seq, c, self.phone_of[c]),
                        "trigger": "partner_offer" if op["with_offer"] else "winback",
                        "campaign_id": f"winback-{self.business}-2026-02",
                        "channel": "whatsapp",
                        "holdout": op["holdout"],
                        "planned_at": iso(T0 + timedelta(days=op["planned_day"])),
                        "offer_id": self.ident("o", 0) if op["with_offer"] else None,
                        "provider_message_id": None if op["holdout"] else f"wamid.{m}{self.seq}",
                    }
                )
        return out

    def static_records(self) -> dict[str, list[dict[str, Any]]]:
        """What exists before the first change: the business and its partner offer."""
        return {
            "businesses": [
                {
                    "id": self.business, "name": f"Salon {self.seq}", "kind": "salon",
                    "country": "RU", "city": "Moscow", "timezone": "Europe/Moscow",
                    "currency": "RUB", "updated_at": iso(T0 - timedelta(days=60)),
                }
            ],
            "offers": [
                {
                    "offer_id": self.ident("o", 0), "publisher_business_id": self.business,
                    "title": "Second visit -20%", "distributor_business_ids": [self.business],
                    "reward_per_client": "300.00", "discount_pct": "20", "cashback_pct": "5",
                    "currency": "RUB", "capacity": 100,
                    "audience": {"min_age": None, "max_age": None, "gender": None},
                    "valid_from": "2026-01-01", "valid_to": "2026-12-31",
                }
            ],
        }  # fmt: skip


# --- loads, builds, comparison -----------------------------------------------------------


def load_crm(client: Any, entity: str, records: list[dict[str, Any]]) -> list[LoadResult]:
    """One CRM API page through the connector's own page load (as `sync_entity`)."""
    if not records:
        return []
    regions = {r.get("business_id", r["id"]): "RU" for r in records}
    return [
        load_page(
            client, load_field_map().entity(entity), records, regions=regions, id_key=DEV_ID_KEY
        )
    ]


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def write_segment(files: Path, step: int, bodies: list[dict[str, Any]]) -> Path:
    """The webhooks of one step as a closed receiver spool segment, in arrival order."""
    path = files / "spool" / f"wh-20260201T000000000000Z-1-diff-{step:06d}{CLOSED_SUFFIX}"
    path.parent.mkdir(parents=True, exist_ok=True)
    received_ms = int((T0 + timedelta(days=2 * step)).timestamp() * 1000)
    path.write_bytes(
        b"".join(encode_record("whatsapp", json.dumps(b).encode(), received_ms) for b in bodies)
    )
    return path


def load_step(dsn: str, files: Path, step: int, records: dict[str, list[dict[str, Any]]]) -> None:
    """Load one step of every sequence; no generated row may be quarantined."""
    results: list[LoadResult] = []
    with warehouse.connect(dsn) as client:
        prepare_raw(client)
        for entity in ("businesses", "customers", "appointments"):
            results += load_crm(client, entity, records.get(entity, []))
        if records.get("offers"):
            results.append(
                load_offers(client, write_jsonl(files / "offers.jsonl", records["offers"]))
            )
        if records.get("partner_events"):
            path = write_jsonl(
                files / PARTNER.partner_id / f"events_{step}.jsonl", records["partner_events"]
            )
            results.append(load_partner_file(client, PARTNER, path, id_key=DEV_ID_KEY))
        if records.get("sends"):
            path = write_jsonl(files / "messages" / f"sends_{step}.jsonl", records["sends"])
            results.append(load_message_sends(client, path, id_key=DEV_ID_KEY))
        if records.get("webhooks"):
            results.append(load_segment(client, write_segment(files, step, records["webhooks"])))
    quarantined = [r for r in results if r.rows_quarantined]
    assert not quarantined, f"step {step}: generated rows were quarantined: {quarantined}"


def dbt(args: list[str], config: DbtConfig) -> None:
    """`dbt <args>` on one data directory; a failure shows dbt's own output."""
    try:
        run_dbt([*args, "--vars", DBT_VARS, "--quiet"], config, capture=True)
    except subprocess.CalledProcessError as failed:
        raise AssertionError(f"dbt {' '.join(args)} failed:\n{failed.stdout[-6000:]}") from None


def normalise(value: Any) -> Any:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else float(f"{value:.9g}")
    if isinstance(value, Decimal):
        return str(value.normalize())
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return tuple(normalise(v) for v in value)
    return value


def read_marts(dsn: str) -> dict[str, tuple[list[str], Counter]]:
    """Every table of the `marts` database: (column names, multiset of rows)."""
    out = {}
    with warehouse.connect(dsn) as client:
        names = client.query(
            "SELECT name FROM system.tables WHERE database = 'marts' AND engine != 'View' "
            "AND name NOT LIKE '%__dbt%' ORDER BY name"
        ).result_rows
        for (name,) in names:
            result = client.query(f"SELECT * FROM marts.`{name}`")
            rows = Counter(tuple(normalise(value) for value in row) for row in result.result_rows)
            out[name] = (list(result.column_names), rows)
    return out


def sequence_of(row: tuple, owners: dict[str, int]) -> int | None:
    """Which sequence a mart row belongs to: by an id of its own or a customer hash."""
    for value in row:
        if isinstance(value, str):
            if match := TAG.search(value):
                return int(match.group(1))
            if value in owners:
                return owners[value]
    return None


def explain(
    step: int,
    differences: dict[str, tuple[list[str], Counter, Counter]],
    sequences: list[list[list[dict[str, Any]]]],
    owners: dict[str, int],
) -> str:
    """Per sequence: its operations up to the failing step and the differing rows."""
    by_sequence: dict[int | None, list[str]] = {}
    for table, (columns, only_incremental, only_full) in differences.items():
        for label, rows in (
            ("incremental only", only_incremental),
            ("full refresh only", only_full),
        ):
            for row, n in rows.items():
                shown = dict(zip(columns, row, strict=True))
                by_sequence.setdefault(sequence_of(row, owners), []).append(
                    f"    marts.{table} {label} (x{n}): {shown}"
                )
    lines = [f"after step {step}: {len(by_sequence)} sequence(s) differ; the first ones:"]
    for seq, rows in list(by_sequence.items())[:3]:
        lines.append(f"sequence {seq} (business {business_id(seq) if seq is not None else '?'}):")
        if seq is not None:
            for k, ops in enumerate(sequences[seq][: step + 1]):
                lines.append(f"  step {k}: {ops}")
        lines += rows[:12]
    return "\n".join(lines)


def test_incremental_marts_equal_full_refresh_after_every_step(tmp_path: Path) -> None:
    sequences = draw_sequences(SEQUENCES)
    worlds = [World(seq) for seq in range(len(sequences))]
    owners = {
        customer_hash(phone(seq, c, v)): seq
        for seq in range(len(sequences))
        for c in range(CUSTOMERS)
        for v in range(PHONES)
    }
    incremental = DbtConfig(
        warehouse_dsn=f"chdb://{tmp_path / 'a'}", artifacts_dir=tmp_path / "a_dbt"
    )
    full = DbtConfig(warehouse_dsn=f"chdb://{tmp_path / 'b'}", artifacts_dir=tmp_path / "b_dbt")

    def step_records(step: int) -> dict[str, list[dict[str, Any]]]:
        merged: dict[str, list[dict[str, Any]]] = {}
        for world, sequence in zip(worlds, sequences, strict=True):
            parts = world.records(step, sequence[step])
            if step == 0:
                parts |= world.static_records()
            for key, records in parts.items():
                merged.setdefault(key, []).extend(records)
        return merged

    # Step 0: the first build of everything (seeds, views, marts), incremental or not.
    load_step(incremental.warehouse_dsn, tmp_path / "files", 0, step_records(0))
    dbt(
        ["build", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test"],
        incremental,
    )
    for step in range(1, STEPS + 1):
        load_step(incremental.warehouse_dsn, tmp_path / "files", step, step_records(step))
        shutil.rmtree(tmp_path / "b", ignore_errors=True)
        # chDB links tables into `data/` and `metadata/` by relative symlinks: keep them.
        shutil.copytree(tmp_path / "a", tmp_path / "b", symlinks=True)
        with ThreadPoolExecutor(2) as pool:
            runs = [
                pool.submit(dbt, ["run", "--select", MARTS, *extra], config)
                for config, extra in ((incremental, []), (full, ["--full-refresh"]))
            ]  # fmt: skip
            for run in runs:
                run.result()
        got, want = read_marts(incremental.warehouse_dsn), read_marts(full.warehouse_dsn)
        assert sorted(got) == sorted(want), f"step {step}: mart tables differ"
        differences = {}
        for table, (columns, rows) in got.items():
            want_columns, want_rows = want[table]
            assert columns == want_columns, f"step {step}: marts.{table} columns differ"
            if rows != want_rows:
                differences[table] = (columns, rows - want_rows, want_rows - rows)
        assert not differences, explain(step, differences, sequences, owners)
