"""The `revisit` command line."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import warehouse
from revisit.ingest_commands import app as ingest_app
from revisit.settings import Settings, SettingsError, get_settings, redact_dsn

app = typer.Typer(
    rich_markup_mode="markdown",
    help="Revisit — retention data platform: ingestion → dbt → ML → activation.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL to run against the configured warehouse.")],
    output: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="Output format.")
    ] = OutputFormat.table,
) -> None:
    """Run a SQL query on the warehouse and print the result."""
    settings = get_settings()
    try:
        with warehouse.connect(settings.warehouse_dsn) as client:
            frame = client.query_df(sql)
            if frame.empty and len(frame.columns) == 0:
                frame = frame.reindex(columns=_result_columns(client, sql))
    except warehouse.WarehouseError as ex:
        raise _fail(str(ex)) from None
    except Exception as ex:  # the engine's own message is what the user needs
        raise _fail(str(ex).strip().splitlines()[0] if str(ex).strip() else repr(ex)) from None
    if output is OutputFormat.csv:
        sys.stdout.write(frame.to_csv(index=False))
    elif output is OutputFormat.json:
        sys.stdout.write(frame.to_json(orient="records", date_format="iso", force_ascii=False))
        sys.stdout.write("\n")
    else:
        table = Table(*[str(c) for c in frame.columns], show_lines=False)
        for row in frame.itertuples(index=False):
            table.add_row(*["" if v is None else str(v) for v in row])
        console.print(table)
        console.print(f"[dim]{len(frame)} row(s)[/]")


def _result_columns(client: warehouse.Client, sql: str) -> list[str]:
    """Zero rows come back without column names: ask the engine for the result's shape
    (DESCRIBE analyses the query without running it), so a CSV still has its header."""
    try:
        described = client.query(f"DESCRIBE TABLE ({sql.strip().rstrip(';')})")
    except Exception:  # not a SELECT (SHOW, SYSTEM …): there are no columns to name
        return []
    return [row[0] for row in described.result_rows]


def _package_versions() -> dict[str, str]:
    names = [
        "revisit", "chdb", "clickhouse-connect", "dbt-core", "dbt-clickhouse",
        "dbt-chdb-revisit", "dagster", "dagster-dbt", "pandas", "scikit-learn",
        "great-expectations",
    ]  # fmt: skip
    versions = {}
    for name in names:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def warehouse_status(settings: Settings) -> dict[str, str]:
    """Whether the warehouse opens, is locked (by which process and path), or fails."""
    target = warehouse.parse_dsn(settings.warehouse_dsn)
    started = time.perf_counter()
    try:
        with warehouse.connect(settings.warehouse_dsn) as client:
            server_version = client.server_version
        elapsed = f"{(time.perf_counter() - started) * 1000:.0f} ms"
        return {"status": "ok", "server_version": server_version, "open_time": elapsed}
    except warehouse.WarehouseLockedError as ex:
        return {"status": "locked", "path": str(ex.path), "pid": str(ex.pid), "detail": str(ex)}
    except warehouse.WarehouseError as ex:
        return {"status": "error", "target": target.display, "detail": str(ex)}


@app.command()
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report.")] = False,
) -> None:
    """Versions, data directory, DSNs and whether the warehouse opens."""
    settings = get_settings()
    report = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "packages": _package_versions(),
        "data_dir": str(settings.data_dir),
        "warehouse_dsn": warehouse.parse_dsn(settings.warehouse_dsn).display,
        "state_dsn": redact_dsn(settings.state_dsn),
        "secrets": _secrets_status(settings),
        "dbt_target": str(settings.dbt().target),
        "warehouse": warehouse_status(settings),
    }
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        table = Table("check", "value", show_header=False)
        for key, value in report.items():
            if isinstance(value, dict):
                value = "\n".join(f"{k}: {v}" for k, v in value.items())
            table.add_row(key, str(value))
        console.print(table)
    if report["warehouse"]["status"] != "ok":
        raise typer.Exit(1)


def _secrets_status(settings: Settings) -> dict[str, str]:
    """Where the secrets come from, without any value."""
    from revisit.settings import DEV_SECRETS

    path = settings.secrets_path
    defaults = settings.dev_default_secrets(DEV_SECRETS)
    return {
        "file": f"{path} ({path.stat().st_mode & 0o777:o})" if path.exists() else "none",
        "development defaults": ", ".join(defaults) if defaults else "none",
    }


@app.command()
def init(
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Replace every secret in the file with a new one.")
    ] = False,
) -> None:
    """Write random per-installation secrets to DATA_DIR/secrets.env (mode 0600).

    Every webhook, provider and CRM secret with a published development default gets one;
    values already in the file are kept unless --rotate. REVISIT_* variables still win.
    """
    from revisit.settings import write_secrets_file

    settings = get_settings()
    written, kept = write_secrets_file(settings.secrets_path, rotate=rotate)
    console.print(
        f"{settings.secrets_path} (0600): {len(written)} secret(s) "
        f"{'rotated' if rotate else 'written'}, {len(kept)} kept"
    )
    shadowed = sorted(n for n in [*written, *kept] if f"REVISIT_{n.upper()}" in os.environ)
    if shadowed:
        names = ", ".join(f"REVISIT_{n.upper()}" for n in shadowed)
        console.print(f"note: set in the environment, which wins over the file: {names}")
    if written:
        console.print(
            "Give the new webhook secrets to the providers (WhatsApp app secret and verify "
            "token, Telegram setWebhook secret_token, SMS gateway) and replace the provider "
            "and CRM tokens with the ones they issued; restart the receiver and workers."
        )
    if "customer_id_key" in written:
        console.print(
            "The customer-id key is new: if this installation already holds data, run "
            "`revisit migrate customer-ids` to rewrite the stored ids under it."
        )


migrate_app = typer.Typer(rich_markup_mode="markdown", help="Migrations of stored data.")
app.add_typer(migrate_app, name="migrate")


@migrate_app.command("customer-ids")
def migrate_customer_ids_command(
    skip_dbt: Annotated[
        bool, typer.Option("--skip-dbt", help="Rewrite raw data only; no dbt full refresh.")
    ] = False,
) -> None:
    """Rewrite every stored customer_id under the current customer-id key (after
    upgrading from unkeyed ids, or after `revisit init --rotate`), then rebuild the marts
    (`dbt build --full-refresh`). Refused (exit 1) while the activation outbox holds
    rows: its idempotency keys are derived from the old ids."""
    from ingestion.rekey import migrate_customer_ids
    from warehouse.dbt_runner import run_dbt

    settings = get_settings()
    held = _outbox_rows(settings)
    if held:
        raise _fail(
            f"the activation outbox holds {held} row(s) keyed by the current customer ids: "
            "re-keying would let the planner enqueue the same messages and accruals again "
            "under new idempotency keys (a double accrual at the ledger). Migrate before "
            "activation runs live, or keep the current key."
        )
    with warehouse.connect(settings.warehouse_dsn) as client:
        report = migrate_customer_ids(client, settings.id_key)
    changed = ", ".join(f"{name} {n:,}" for name, n in report.changed.items() if n) or "none"
    console.print(f"customer ids: {report.phones:,} phone(s) hashed; rows changed: {changed}")
    if skip_dbt or not report.total_changed:
        return
    try:
        run_dbt(["build", "--full-refresh"], settings.dbt())
    except Exception as ex:
        raise _fail(f"dbt build --full-refresh failed: {ex}") from None
    console.print("marts rebuilt (dbt build --full-refresh)")


def _outbox_rows(settings: Settings) -> int:
    """Rows in the activation outbox (0 when the state store has none yet)."""
    from sqlalchemy import create_engine, inspect

    from activation.outbox import TABLES

    state = settings.state_dsn
    if state.startswith("sqlite:///") and not Path(state.removeprefix("sqlite:///")).exists():
        return 0  # never created: nothing was planned live
    engine = create_engine(state)
    try:
        with engine.connect() as conn:
            names = set(inspect(conn).get_table_names())
            return sum(
                conn.exec_driver_sql(f"SELECT count(*) FROM {table.name}").scalar_one()
                for table in TABLES.values()
                if table.name in names
            )
    finally:
        engine.dispose()


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def dbt(ctx: typer.Context) -> None:
    """Run dbt on the configured warehouse, e.g. `revisit dbt build --select marts`."""
    from warehouse.dbt_runner import run_dbt
    from warehouse.load import prepare_raw

    settings = get_settings()
    with warehouse.connect(settings.warehouse_dsn) as client:
        prepare_raw(client)
    try:
        run_dbt(ctx.args or ["build"], settings.dbt())
    except Exception as ex:
        raise _fail(f"dbt failed: {ex}") from None


@app.command()
def dev(
    host: Annotated[str, typer.Option(help="Address of the Dagster UI.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the Dagster UI.")] = 3000,
) -> None:
    """Start the Dagster UI and daemon (`dagster dev`) on this project."""
    from orchestration.instance import prepare_dagster_home
    from warehouse.dbt_runner import ensure_manifest

    settings = get_settings()
    home = prepare_dagster_home(settings)
    ensure_manifest(settings.dbt())
    dagster = str(Path(sys.executable).with_name("dagster"))
    args = [dagster, "dev", "-m", "orchestration.definitions", "-h", host, "-p", str(port)]
    console.print(f"Dagster UI on http://{host}:{port} (DAGSTER_HOME={home})")
    os.execve(dagster, args, {**os.environ, "DAGSTER_HOME": str(home)})


def _mount_ml() -> None:
    from revisit.ml_commands import app as ml_app
    from revisit.uplift_commands import register as register_uplift

    register_uplift(ml_app)
    app.add_typer(ml_app, name="ml", help="The revisit model: evaluate, train, score, uplift.")


_mount_ml()


def _mount_activation() -> None:
    from revisit.activation_commands import app as activation_app

    app.add_typer(activation_app, name="activation")


_mount_activation()
app.add_typer(ingest_app, name="ingest")


def _mount_report() -> None:
    from revisit.report_commands import report

    app.command("report")(report)


_mount_report()

export_app = typer.Typer(rich_markup_mode="markdown", help="Exports for marketers.")
app.add_typer(export_app, name="export")


@export_app.command("segments")
def export_segments_command(
    business: Annotated[
        str | None, typer.Option(help="Only this business id (see marts.dim_businesses).")
    ] = None,
    output: Annotated[
        str, typer.Option("--format", help="csv (UTF-8 with BOM), parquet or xlsx.")
    ] = "csv",
    lang: Annotated[
        str | None,
        typer.Option(
            help="Language of labels, actions and headers: ru or en "
            "(default: from each business's country, RU/BY/KZ… → ru)."
        ),
    ] = None,
    segment: Annotated[
        list[str] | None,
        typer.Option(
            help="Only this segment: a key (at_risk) or a label in either language "
            "('At risk', 'Под угрозой ухода'), case-insensitive; repeatable."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory.")] = None,
) -> None:
    """Segment sizes and member lists per business, in a folder named after it (phone,
    name, segment label and recommended action, RFM, score)."""
    from warehouse.exports import ExportError, ExportFormat, Lang, export_segments

    settings = get_settings()
    try:
        fmt = ExportFormat(output)
    except ValueError:
        raise _fail(f"unknown format {output!r}: use csv, parquet or xlsx", 2) from None
    try:
        language = Lang(lang.lower()) if lang else None
    except ValueError:
        raise _fail(f"unknown language {lang!r}: use ru or en", 2) from None
    target = out or settings.exports_dir / "segments"
    try:
        with warehouse.connect(settings.warehouse_dsn) as client:
            exported = export_segments(
                client, target, business_id=business, fmt=fmt, lang=language,
                segments=segment or (),
            )  # fmt: skip
    except ExportError as ex:
        raise _fail(str(ex), 2) from None
    except warehouse.WarehouseError as ex:
        raise _fail(str(ex)) from None
    if not exported:
        raise _fail("nothing to export: build the marts first (`revisit demo` or dbt build)")
    for item in exported:
        console.print(
            f"{item.name} ({item.business_id}, {item.lang}): {item.customers:,} customers "
            f"→ {item.folder}"
        )


@app.command()
def generate(
    out: Annotated[Path | None, typer.Option(help="Output directory.")] = None,
    customers: Annotated[int, typer.Option(help="People in the ecosystem.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed (same seed, same bytes).")] = 7,
    broken_files: Annotated[
        bool, typer.Option(help="Also write deliberately unparseable files.")
    ] = False,
) -> None:
    """Write a synthetic ecosystem's sources in their native forms (see SOURCES.md)."""
    from simulation.ecosystem import generate as generate_ecosystem

    settings = get_settings()
    target = out or settings.source_dir
    started = time.perf_counter()
    manifest = generate_ecosystem(
        target, customers=customers, seed=seed, include_broken_files=broken_files
    )
    counts = ", ".join(f"{k} {v:,}" for k, v in manifest["counts"].items())
    console.print(f"{target}: {counts} ({time.perf_counter() - started:.1f} s)")


webhooks_app = typer.Typer(
    rich_markup_mode="markdown", help="Messenger webhooks: the receiver and tools around it."
)
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("serve")
def webhooks_serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
    workers: Annotated[
        int, typer.Option(help="Receiver processes on one socket (one per core).")
    ] = 2,
) -> None:
    """Receive WhatsApp, Telegram and SMS webhooks into the durable spool."""
    from ingestion.messenger import serve

    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = get_settings()
    config = settings.receiver(**overrides)
    # Off loopback, anyone can sign with the published development secrets: refuse.
    settings.refuse_dev_secrets(webhook_host=config.host)

    sink = config.spool_root if config.kafka is None else f"kafka topic {config.kafka.topic}"

    def ready(bound_port: int) -> None:
        console.print(
            f"receiving webhooks on http://{config.host}:{bound_port}"
            f"/webhooks/{{whatsapp,telegram,sms}} → {sink}"
        )

    serve(config, workers=workers, on_ready=ready)


@webhooks_app.command("replay")
def webhooks_replay(
    requests_file: Annotated[Path, typer.Argument(help="JSON lines of recorded requests.")],
    base_url: Annotated[str, typer.Option(help="Receiver URL.")] = "",
    concurrency: Annotated[int, typer.Option(help="Requests in flight.")] = 8,
) -> None:
    """Post recorded webhook requests (e.g. the generator's) to a receiver."""
    from simulation.webhook_replay import replay

    settings = get_settings()
    url = base_url or f"http://{settings.webhook_host}:{settings.webhook_port}"
    result = replay(requests_file, url, concurrency=concurrency)
    console.print(f"sent {result.sent}, accepted {result.accepted}: {dict(result.statuses)}")


@webhooks_app.command("load")
def webhooks_load() -> None:
    """Load closed spool segments (and, with REVISIT_WEBHOOK_SINK=kafka, the webhook topic)
    into raw.messenger_events (each exactly once)."""
    from ingestion.messenger import load_spool
    from warehouse.load import prepare_raw

    settings = get_settings()
    kafka = settings.kafka()
    with warehouse.connect(settings.warehouse_dsn) as client:
        prepare_raw(client)
        results = load_spool(client, settings.spool_dir)
        if kafka is not None:
            from ingestion.messenger.kafka import load_topic

            batches = load_topic(client, kafka)
    loaded = sum(r.rows_loaded for r in results)
    quarantined = sum(r.rows_quarantined for r in results)
    console.print(f"{len(results)} segment(s): {loaded} event(s) loaded, {quarantined} quarantined")
    if kafka is not None:
        loaded = sum(r.rows_loaded for r in batches)
        quarantined = sum(r.rows_quarantined for r in batches)
        console.print(
            f"kafka topic {kafka.topic}: {len(batches)} batch(es), {loaded} event(s) loaded, "
            f"{quarantined} quarantined"
        )


@app.command()
def demo(
    customers: Annotated[
        int, typer.Option(help="Size of the synthetic ecosystem (customers).")
    ] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic ecosystem.")] = 7,
) -> None:
    """Generate a synthetic ecosystem, run the main job end to end, print a summary."""
    from revisit.demo import run_demo

    try:
        run_demo(get_settings(), console, customers=customers, seed=seed)
    except warehouse.WarehouseError as ex:
        raise _fail(str(ex)) from None


def main() -> None:
    """The `revisit` entry point: a setting or warehouse the user must fix is one line
    on stderr and exit code 2, not a traceback."""
    try:
        app()
    except (SettingsError, warehouse.WarehouseError) as ex:
        err_console.print(f"[bold red]error:[/] {ex}", soft_wrap=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
