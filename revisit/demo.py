"""`revisit demo` / `make run`: the main job end to end, then a short summary."""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

import warehouse
from revisit.settings import Settings
from warehouse.schema import DATABASES

# Dagster's console logger prints every engine event at DEBUG; the summary is enough.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


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


def run_demo(settings: Settings, console: Console) -> None:
    from orchestration.definitions import defs
    from orchestration.instance import get_instance

    started = time.perf_counter()
    console.rule("[bold]Revisit demo")
    console.print(f"data directory: {settings.data_dir}")
    console.print(f"warehouse:      {warehouse.parse_dsn(settings.warehouse_dsn).display}")
    instance = get_instance(settings)
    job = defs.resolve_job_def("revisit_main")
    with console.status("running the main job (ingestion → dbt → ML → activation dry run)…"):
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_RUN_CONFIG
        )
    if not result.success:
        failures = [e for e in result.all_events if e.is_failure]
        for event in failures[:5]:
            console.print(f"[red]{event.step_key}: {event.message}[/]")
        raise SystemExit(f"the main job failed (run id {result.run_id})")

    with warehouse.connect(settings.warehouse_dsn) as client:
        inventory = table_inventory(client)
    table = Table("database", "table", "engine", "rows", title="Tables built")
    for database, name, engine, count in inventory:
        table.add_row(database, name, engine, f"{count:,}")
    console.print(table)
    console.print(
        f"[green]done[/] in {time.perf_counter() - started:.1f} s — run {result.run_id}\n"
        f"Next:\n"
        f"  make dev                       Dagster UI on http://127.0.0.1:3000 (runs, lineage)\n"
        f'  .venv/bin/revisit query "SELECT * FROM marts.dim_customers LIMIT 10"\n'
        f"  .venv/bin/revisit doctor       versions, DSNs, warehouse status"
    )
