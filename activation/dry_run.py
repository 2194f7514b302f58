"""Dry run: the full plan, counted and sampled — and nothing sent, nothing kept.

`dry_run(client, triggers, now)` runs the real planner into a scratch table (dropped
afterwards; `activation.send_plan` and the outbox are untouched) and reports:
counts per trigger × decision, per segment, per channel and per holdout group; every
exclusion reason with its count and sample rows; rendered sample messages per trigger;
and triggers that were skipped with why. `report.render()` is a text table for the CLI,
`report.model_dump_json()` / `report.to_json()` the machine form.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

from clickhouse_connect.driver.client import Client
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from activation.planner import plan
from activation.trigger_specs import AnyTrigger
from warehouse.privacy import mask_text


def masked_texts(client: Client, rows: Sequence[tuple[str, str, str]]) -> list[str]:
    """Sample texts fit to show (reports, logs, Dagster metadata): phones masked and the
    customer's name (from marts.dim_customers) replaced by `‹name›`. `rows`:
    (business_id, customer_id, text)."""
    keys = sorted({(b, c) for b, c, _ in rows})
    names: dict[tuple[str, str], str] = {}
    if keys:
        found = client.query(
            "SELECT business_id, customer_id, full_name FROM marts.dim_customers "
            "WHERE (business_id, customer_id) IN {k:Array(Tuple(String, String))}",
            parameters={"k": keys},
        ).result_rows
        names = {(b, c): n or "" for b, c, n in found}
    return [mask_text(text, [names.get((b, c), "")]) for b, c, text in rows]


class Count(BaseModel):
    key: dict[str, str]
    n: int


class Exclusion(BaseModel):
    trigger: str
    reason: str
    n: int
    samples: list[dict[str, str]]


class SampleMessage(BaseModel):
    trigger: str
    business_id: str
    customer_id: str
    channel: str
    send_at: str
    decision: str
    text: str


class DryRunReport(BaseModel):
    """What a plan would do at `now`. Counts are of candidates (one per trigger × occasion)."""

    run_id: str
    now: datetime
    seconds: float
    candidates: int
    by_trigger: list[Count]
    by_segment: list[Count]
    by_channel: list[Count]
    by_holdout_group: list[Count]
    exclusions: list[Exclusion]
    samples: list[SampleMessage]
    skipped: dict[str, str]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def render(self, width: int = 120) -> str:
        """Human-readable tables (rich), as plain text."""
        console = Console(file=StringIO(), width=width, record=True, color_system=None)
        console.print(
            f"Dry run at {self.now.isoformat()} — {self.candidates} candidates, "
            f"planned in {self.seconds:.2f}s; nothing was sent."
        )
        for title, counts in (
            ("By trigger and decision", self.by_trigger),
            ("Planned by segment", self.by_segment),
            ("Planned by channel", self.by_channel),
            ("Holdout groups (planned vs holdout)", self.by_holdout_group),
        ):
            if not counts:
                continue
            table = Table(title=title)
            for col in counts[0].key:
                table.add_column(col)
            table.add_column("n", justify="right")
            for c in counts:
                table.add_row(*c.key.values(), str(c.n))
            console.print(table)
        if self.exclusions:
            table = Table(title="Exclusions")
            for col in ("trigger", "reason", "n", "e.g. business/customer/occasion"):
                table.add_column(col)
            for e in self.exclusions:
                eg = "; ".join(
                    f"{s['business_id']}/{s['customer_id']}/{s['occasion']}" for s in e.samples[:2]
                )
                table.add_row(e.trigger, e.reason, str(e.n), eg)
            console.print(table)
        if self.samples:
            table = Table(title="Sample messages")
            for col in ("trigger", "channel", "send_at (UTC)", "decision", "text"):
                table.add_column(col)
            for s in self.samples:
                table.add_row(s.trigger, s.channel, s.send_at, s.decision, s.text)
            console.print(table)
        for name, why in sorted(self.skipped.items()):
            console.print(f"skipped {name}: {why}")
        return console.export_text()


def _counts(client: Client, table: str, run_id: str, cols: list[str], where: str) -> list[Count]:
    rows = client.query(
        f"SELECT {', '.join(cols)}, count() FROM {table} WHERE run_id = {{r:String}} {where} "
        f"GROUP BY {', '.join(cols)} ORDER BY {', '.join(cols)}",
        parameters={"r": run_id},
    ).result_rows
    return [
        Count(key={c: str(v) for c, v in zip(cols, r[:-1], strict=True)}, n=r[-1]) for r in rows
    ]


def dry_run(
    client: Client,
    triggers: Sequence[AnyTrigger],
    now: datetime,
    *,
    horizon: timedelta = timedelta(hours=24),
    samples_per_group: int = 3,
    **plan_kwargs: Any,
) -> DryRunReport:
    """Plan into a scratch table, summarise, drop the table. Sends and stores nothing."""
    scratch = f"activation._dry_run_{uuid.uuid4().hex[:12]}"
    try:
        result = plan(client, triggers, now=now, horizon=horizon, table=scratch, **plan_kwargs)
        rid, p = result.run_id, {"r": result.run_id}
        total = client.query(
            f"SELECT count() FROM {scratch} WHERE run_id = {{r:String}}", parameters=p
        ).result_rows[0][0]
        excl_rows = client.query(
            f"""SELECT trigger, reason, count() AS n,
                    groupArraySample({samples_per_group}, 7)((business_id, customer_id,
                        occasion, toString(send_at), toString(expires_at))) AS eg
                FROM {scratch} WHERE run_id = {{r:String}} AND decision = 'excluded'
                GROUP BY trigger, reason ORDER BY trigger, n DESC, reason""",
            parameters=p,
        ).result_rows
        exclusions = [
            Exclusion(
                trigger=t,
                reason=reason,
                n=n,
                samples=[
                    dict(
                        zip(
                            ("business_id", "customer_id", "occasion", "send_at", "expires_at"),
                            e,
                            strict=True,
                        )
                    )
                    for e in eg
                ],
            )
            for t, reason, n, eg in excl_rows
        ]
        sample_rows = client.query(
            f"""SELECT trigger, business_id, customer_id, channel, toString(send_at), decision,
                    text
                FROM {scratch} WHERE run_id = {{r:String}} AND decision != 'excluded'
                ORDER BY trigger, cityHash64(customer_id, business_id)
                LIMIT {samples_per_group} BY trigger""",
            parameters=p,
        ).result_rows
        fields = ("trigger", "business_id", "customer_id", "channel", "send_at", "decision")
        texts = masked_texts(client, [(r[1], r[2], r[6]) for r in sample_rows])
        samples = [
            SampleMessage(**dict(zip(fields, r[:6], strict=True)), text=text)
            for r, text in zip(sample_rows, texts, strict=True)
        ]
        sent = "AND decision = 'planned'"
        return DryRunReport(
            run_id=rid,
            now=now,
            seconds=round(result.seconds, 3),
            candidates=total,
            by_trigger=_counts(client, scratch, rid, ["trigger", "decision"], ""),
            by_segment=_counts(client, scratch, rid, ["segment"], sent),
            by_channel=_counts(client, scratch, rid, ["channel"], sent),
            by_holdout_group=_counts(
                client, scratch, rid, ["trigger", "decision"], "AND decision != 'excluded'"
            ),
            exclusions=exclusions,
            samples=samples,
            skipped=result.skipped,
        )
    finally:
        client.command(f"DROP TABLE IF EXISTS {scratch}")
