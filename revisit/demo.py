"""`revisit demo` / `make run`: the whole platform on a synthetic ecosystem.

1. Generate the ecosystem's sources in their native forms (once per scale and seed).
2. Start the webhook receiver, replay the recorded messenger webhooks into it, stop it
   (a clean stop closes the spool segments so they can be loaded).
3. Start the CRM stand-in and run the `revisit_main` Dagster job in process: ingestion
   (CRM API and file drops, spool, message export, partner feeds) → dbt → ML →
   activation in dry run.
4. Print what was built.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Column, Table

import warehouse
from revisit.settings import Settings
from warehouse.schema import DATABASES

# Dagster's console logger prints every engine event at DEBUG; the summary is enough.
QUIET_LOGGERS = {"console": {"config": {"log_level": "WARNING"}}}


def prepare_sources(settings: Settings, customers: int, seed: int, console: Console) -> dict:
    """The generated ecosystem in the source directory, reused when it matches."""
    from simulation.ecosystem import WebhookSecrets, generate
    from simulation.ecosystem.generator import GENERATOR_VERSION

    manifest_path = settings.source_dir / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        wanted = (customers, seed, GENERATOR_VERSION)
        found = (manifest.get("customers"), manifest.get("seed"), manifest.get("generator_version"))
        if found == wanted:
            console.print(f"sources: reusing {settings.source_dir}")
            return manifest
    secrets = WebhookSecrets(
        whatsapp_app_secret=settings.whatsapp_app_secret.get_secret_value(),
        telegram_secret_token=settings.telegram_secret_token.get_secret_value(),
        sms_webhook_secret=settings.sms_webhook_secret.get_secret_value(),
    )
    with console.status(f"generating a synthetic ecosystem of {customers:,} customers…"):
        started = time.perf_counter()
        manifest = generate(settings.source_dir, customers=customers, seed=seed, secrets=secrets)
    console.print(
        f"sources: {customers:,} customers generated in {time.perf_counter() - started:.1f} s "
        f"→ {settings.source_dir}"
    )
    return manifest


def replay_webhooks(settings: Settings, console: Console) -> dict[str, int]:
    """Run the receiver in its own process, replay the recorded webhooks, stop it."""
    from simulation.webhook_replay import receiver_process, replay

    accepted: dict[str, int] = {}
    with receiver_process() as base_url:
        for requests_file in sorted((settings.source_dir / "webhooks").glob("*.jsonl")):
            result = replay(requests_file, base_url, concurrency=64)
            accepted[requests_file.stem] = result.accepted
    console.print(
        "webhooks: "
        + ", ".join(f"{name} {count:,}" for name, count in accepted.items())
        + " accepted and spooled"
    )
    return accepted


def table_inventory(client: warehouse.Client) -> list[tuple[str, str, str, int]]:
    """(database, table, engine, rows) of every table and view Revisit owns."""
    rows = client.query(
        "SELECT database, name, engine FROM system.tables "
        "WHERE database IN {dbs:Array(String)} AND NOT is_temporary ORDER BY database, name",
        parameters={"dbs": list(DATABASES)},
    ).result_rows
    inventory = []
    for database, name, engine in rows:
        count = client.command(f"SELECT count() FROM `{database}`.`{name}`")
        inventory.append((database, name, engine, int(count)))
    return inventory


def run_main_job(settings: Settings, run_config: dict[str, Any]) -> Any:
    from orchestration.definitions import defs
    from orchestration.instance import get_instance

    job = defs.resolve_job_def("revisit_main")
    # dbt's own log lines (which dagster-dbt echoes to stdout) go to a file, not the screen.
    log_path = settings.data_dir / "logs" / "demo-run.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log, contextlib.redirect_stdout(log):
        return job.execute_in_process(
            instance=get_instance(settings),
            raise_on_error=False,
            run_config={**run_config, "loggers": QUIET_LOGGERS},
        )


def failed_checks_of(result: Any, severity: str) -> list[str]:
    """`<asset>: <check>` of every asset check of `severity` (ERROR, WARN) that did not pass."""
    return [
        f"{evaluation.asset_key.to_user_string()}: {evaluation.check_name}"
        for evaluation in result.get_asset_check_evaluations()
        if not evaluation.passed and evaluation.severity.value == severity
    ]


def print_activation(result: Any, console: Console) -> None:
    """The dry run's counts per trigger, from the activation assets' metadata."""
    counts = (Column(name, justify="right") for name in ("planned", "holdout", "excluded"))
    table = Table("trigger", *counts, "skipped because", title="Activation dry run (nothing sent)")
    for event in result.asset_materializations_for_node("activation"):
        meta = {k: v.value for k, v in event.metadata.items()}
        table.add_row(
            event.asset_key.path[-1], f"{meta['planned']:,}", f"{meta['holdout']:,}",
            f"{meta['excluded']:,}", str(meta.get("skipped") or ""),
        )  # fmt: skip
    console.print(table)


def print_segments(client: warehouse.Client, console: Console) -> None:
    """Segment sizes per business: one column per business, one row per segment."""
    sizes = client.query_df(
        "SELECT s.segment_label AS segment, r.business_id AS business, count() AS n, "
        "any(s.sort_order) AS sort_order FROM marts.customer_rfm AS r "
        "INNER JOIN marts.rfm_segments AS s ON r.segment = s.segment "
        "GROUP BY segment, business"
    )
    if sizes.empty:
        return
    pivot = sizes.pivot_table(index=["sort_order", "segment"], columns="business", values="n",
                              aggfunc="sum", fill_value=0)  # fmt: skip
    # As many business columns as the terminal holds beside unwrapped segment labels
    # (a business column takes its id plus three characters of border and padding).
    label_width = max(len(segment) for _, segment in pivot.index)
    column_width = max(len(str(b)) for b in pivot.columns) + 3
    fits = (console.width - label_width - 4) // column_width
    shown = list(pivot.columns[: max(1, min(8, fits))])
    title = "Customers per RFM segment and business"
    if len(pivot.columns) > len(shown):
        title += f" (first {len(shown)} of {len(pivot.columns)} businesses)"
    table = Table(Column("segment", no_wrap=True), title=title)
    for business in shown:
        table.add_column(str(business), justify="right")
    for (_, segment), row in pivot.iterrows():
        table.add_row(segment, *(f"{int(row[b]):,}" for b in shown))
    console.print(table)


def print_data_loss(client: warehouse.Client, console: Console, top: int = 8) -> None:
    """The data-loss ledger's largest lines (over every business) and the phone merges."""
    ledger = client.query(
        "SELECT source_table, mart, outcome, reason, sum(rows) AS n, sum(share) AS part "
        "FROM marts.data_loss GROUP BY source_table, mart, outcome, reason "
        "ORDER BY outcome = 'lost' DESC, n DESC"
    ).result_rows
    table = Table("source", "missing from", "outcome", "reason", "rows", "share",
                  title="Data-loss ledger (marts.data_loss)", box=box.SIMPLE_HEAD)  # fmt: skip
    for column in table.columns[:3]:
        column.no_wrap = True
    for column in table.columns[4:]:
        column.justify = "right"
    for source, mart, outcome, reason, rows, share in ledger[:top]:
        table.add_row(source, mart or "-", outcome, reason, f"{rows:,}", f"{share:.2%}")
    if len(ledger) > top:
        table.caption = f"{len(ledger) - top} more line(s): SELECT * FROM marts.data_loss"
    if ledger:
        console.print(table)
    else:
        console.print("data loss: none — every source row reached its marts")
    customers, records = client.query(
        "SELECT uniqExact(business_id, customer_id), count() FROM marts.crm_phone_collisions"
    ).result_rows[0]
    console.print(
        f"phone collisions: {customers:,} customer(s) merged from {records:,} CRM records "
        "sharing a phone (marts.crm_phone_collisions)"
    )


def print_migration(client: warehouse.Client, console: Console) -> None:
    """Customers moving between RFM segments over the last full month (the last two month-end
    snapshots), summed over businesses: one row per segment before, one column per segment
    after. The as-of snapshot is often a day after a month end, so it would show few moves."""
    moves = client.query_df(
        "SELECT m.from_segment AS from_segment, m.to_segment AS to_segment, "
        "sum(m.customers) AS n, any(m.from_date) AS from_date, any(m.to_date) AS to_date "
        "FROM marts.rfm_segment_migration AS m "
        "WHERE m.to_date = (SELECT max(snapshot_date) FROM marts.rfm_segment_history "
        "WHERE is_month_end) "
        "GROUP BY from_segment, to_segment"
    )
    if moves.empty:
        console.print("segment migration: empty (fewer than two RFM snapshots so far)")
        return
    order = dict(client.query("SELECT segment, sort_order FROM marts.rfm_segments").result_rows)
    labels = dict(client.query("SELECT segment, segment_label FROM marts.rfm_segments").result_rows)
    pivot = moves.pivot_table(index="from_segment", columns="to_segment", values="n",
                              aggfunc="sum", fill_value=0)  # fmt: skip
    to_segments = sorted(pivot.columns, key=lambda s: order.get(s, 99))
    from_segments = sorted(pivot.index, key=lambda s: order.get(s, 0 if s == "none" else 99))
    title = (
        f"RFM segment migration {str(moves.from_date.iloc[0])[:10]} → "
        f"{str(moves.to_date.iloc[0])[:10]} (customers)"
    )
    # Numbered columns, no vertical rules and no padding keep the matrix within 80
    # columns; the rows name the segments with their number.
    table = Table("from \\ to", *(str(order.get(s, "?")) for s in to_segments), title=title,
                  box=box.SIMPLE_HEAD, pad_edge=False, padding=0)  # fmt: skip
    table.columns[0].no_wrap = True
    for column, to in zip(table.columns[1:], to_segments, strict=True):
        column.justify = "right"
        column.min_width = len(str(int(pivot[to].max())))
    for segment in from_segments:
        name = "(new)" if segment == "none" else labels.get(segment, segment)
        number = f"{order[segment]:>2} " if segment in order else "   "
        cells = []
        for to in to_segments:
            n = int(pivot.at[segment, to])
            cells.append(str(n) if n else "·")
        table.add_row((number + name)[:18], *cells)
    console.print(table)


def run_demo(settings: Settings, console: Console, *, customers: int, seed: int = 7) -> None:
    from simulation.crm_api import serve_in_background

    started = time.perf_counter()
    console.rule("[bold]Revisit demo")
    console.print(f"data directory: {settings.data_dir}")
    console.print(f"warehouse:      {warehouse.parse_dsn(settings.warehouse_dsn).display}")
    manifest = prepare_sources(settings, customers, seed, console)
    replay_webhooks(settings, console)
    token = settings.crm_api_token.get_secret_value()
    with (
        serve_in_background(settings.source_dir, token=token) as crm_api,
        console.status("running the main job (ingestion → dbt → ML → activation dry run)…"),
    ):
        result = run_main_job(
            settings,
            {
                "ops": {
                    "crm": {"config": {"api_url": crm_api.base_url}},
                    "dbt_models": {"config": {"as_of_date": manifest["as_of"]}},
                    "revisit_ml": {"config": {"as_of": manifest["as_of"]}},
                    "uplift_scores": {"config": {"as_of": manifest["as_of"]}},
                    "activation": {
                        "config": {"now": f"{manifest['as_of']}T06:00:00+00:00", "dry_run": True}
                    },
                    "cashback_accruals": {"config": {"dry_run": True}},
                    "deliveries": {"config": {"dry_run": True}},
                }
            },
        )
    if not result.success:
        for event in [e for e in result.all_events if e.is_failure][:5]:
            console.print(f"[red]{event.step_key}: {event.message}[/]")
        raise SystemExit(f"the main job failed (run id {result.run_id})")
    failed_checks = failed_checks_of(result, "ERROR")
    warnings = failed_checks_of(result, "WARN")

    print_activation(result, console)
    for event in result.asset_materializations_for_node("exports__marketer_report"):
        console.print(
            f"marketer report (HTML, XLSX, PDF per business): {event.metadata['path'].value}"
        )
    with warehouse.connect(settings.warehouse_dsn) as client:
        print_segments(client, console)
        print_migration(client, console)
        print_data_loss(client, console)
        inventory = table_inventory(client)
    table = Table("database", "table", "engine", "rows", title="Tables built")
    for database, name, engine, count in inventory:
        table.add_row(database, name, engine, f"{count:,}")
    console.print(table)
    if failed_checks:
        for name in failed_checks:
            console.print(f"[red]check failed (ERROR): {name}[/]")
        raise SystemExit(
            f"{len(failed_checks)} ERROR check(s) failed: {', '.join(failed_checks)} "
            f"(Dagster run {result.run_id}; see the checks in `make dev`)"
        )
    console.print(
        "checks: every ERROR-severity check passed"
        + (f"; {len(warnings)} warning(s): {', '.join(warnings)}" if warnings else "")
    )
    console.print(
        f"[green]done[/] in {time.perf_counter() - started:.1f} s — Dagster run {result.run_id}\n"
        f"Next:\n"
        f"  make dev      Dagster UI on http://127.0.0.1:3000 (this run, lineage, checks)\n"
        f'  .venv/bin/revisit query "SELECT segment, count() FROM marts.customer_rfm '
        f'GROUP BY segment"\n'
        f"  .venv/bin/revisit doctor      versions, DSNs, warehouse status\n"
        f"  {settings.data_dir / 'logs' / 'demo-run.log'}   dbt's log of this run"
    )
