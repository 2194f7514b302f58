"""`revisit ingest …` commands (a Typer sub-app the `revisit` CLI mounts as `ingest`).

Every file is accounted for where the user is: loaded (rows, quarantined rows with the
top reasons, each naming value and rule), already loaded, skipped (and why: the name
patterns of its field map) or failed (the decoded error with a hint). The exit code is
1 when any file failed or was skipped, or the CRM API could not be reached.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

import warehouse
from revisit.settings import Settings, get_settings

if TYPE_CHECKING:
    from ingestion.crm import ExportsReport, FieldMaps

app = typer.Typer(
    rich_markup_mode="markdown",
    help="Load sources into the warehouse's raw tables.",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)

SourceOption = Annotated[
    Path | None,
    typer.Option(
        "--source",
        help="CRM exports: a folder of business folders (BUSINESS_ID/...), or one "
        "business's folder. Default: SOURCE_DIR/crm/exports.",
    ),
]
FieldMapOption = Annotated[
    Path | None,
    typer.Option(
        "--field-map",
        help="Field map (YAML) for every folder of this run; default per business: "
        "DATA_DIR/field_maps/BUSINESS_ID.yaml, then FOLDER/field_map.yaml, then "
        "REVISIT_CRM_FIELD_MAP, then the built-in map.",
    ),
]


def crm_field_maps(settings: Settings, forced: Path | None = None) -> FieldMaps:
    """Which field map reads each business folder (see `ingestion.crm.FieldMaps`)."""
    from ingestion.crm import FieldMaps, load_field_map

    default = settings.crm_field_map
    return FieldMaps(
        forced=load_field_map(forced) if forced else None,
        maps_dir=settings.field_maps_dir,
        default=load_field_map(default) if default else None,
    )


def _exports_root(settings: Settings, source: Path | None) -> tuple[Path, list[str] | None]:
    """(exports root, only these business folders or None for all)."""
    if source is None:
        return settings.source_dir / "crm" / "exports", None
    source = source.expanduser().resolve()
    if not source.is_dir():
        return source, None  # reported by the caller as "no CRM exports at …"
    # A folder holding data files itself is one business's folder.
    if any(p.is_file() and not p.name.startswith(".") for p in source.iterdir()):
        return source.parent, [source.name]
    return source, None


def _print_report(report: ExportsReport) -> None:
    table = Table(title="CRM exports", title_justify="left")
    for column in ("file", "field map", "entity", "status", "loaded", "quarantined"):
        right = column in ("loaded", "quarantined")
        table.add_column(
            column, justify="right" if right else "left", overflow="fold",
            no_wrap=column == "status",
        )  # fmt: skip
    style = {"loaded": "green", "already loaded": "dim", "skipped": "yellow", "failed": "red"}
    for f in report.files:
        table.add_row(
            f.path, f.field_map, f.entity or "", f"[{style[f.status]}]{f.status}[/]",
            f"{f.rows_loaded:,}", f"{f.rows_quarantined:,}",
        )  # fmt: skip
    console.print(table)
    # Details as whole lines (never cut to the terminal's width): what to fix, per file.
    for f in report.files:
        if f.status in ("skipped", "failed"):
            console.print(f"{f.status} {f.path}: {f.message}", soft_wrap=True, markup=False)
        for reason, count in f.top_reasons:
            console.print(f"quarantined {f.path}: {count} × {reason}", soft_wrap=True, markup=False)


def _load_files(
    client: Any, settings: Settings, source: Path | None, field_map: Path | None
) -> ExportsReport | None:
    from ingestion.crm import ingest_crm_exports

    root, only = _exports_root(settings, source)
    if not root.is_dir():
        err_console.print(
            f"[bold red]error:[/] no CRM exports at {root}: --source takes a folder of "
            "business folders or one business's folder",
            soft_wrap=True,
        )
        return None
    maps = crm_field_maps(settings, field_map)
    return ingest_crm_exports(
        client, root, field_maps=maps, businesses=only, id_key=settings.id_key
    )


@app.command("files")
def ingest_files(source: SourceOption = None, field_map: FieldMapOption = None) -> None:
    """Load CRM file drops and print what happened to each file (exit 1 if any file
    failed or was skipped)."""
    from ingestion.crm import FieldMapError

    settings = get_settings()
    try:
        with warehouse.connect(settings.warehouse_dsn) as client:
            report = _load_files(client, settings, source, field_map)
    except FieldMapError as ex:
        err_console.print(f"[bold red]error:[/] {ex}", soft_wrap=True)
        raise typer.Exit(1) from None
    if report is None:
        raise typer.Exit(1)
    _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


@app.command("crm")
def ingest_crm(
    api_url: Annotated[
        str | None, typer.Option(help="CRM API base URL (default: REVISIT_CRM_API_URL).")
    ] = None,
    source: SourceOption = None,
    field_map: FieldMapOption = None,
) -> None:
    """The CRM API (when configured) and then the CRM file drops; an unreachable API is
    reported and does not stop the files (exit 1)."""
    from ingestion.crm import CrmApiError, FieldMapError, sync_crm_api

    settings = get_settings()
    config = settings.crm_api(api_url)
    if api_url:
        config = config.model_copy(update={"url_setting": "--api-url"})
    api_failed = False
    try:
        with warehouse.connect(settings.warehouse_dsn) as client:
            if config.base_url is None:
                console.print("CRM API: not configured (REVISIT_CRM_API_URL unset), skipped")
            else:
                try:
                    results = sync_crm_api(client, config, id_key=settings.id_key)
                    loaded = sum(r.rows_loaded for r in results)
                    quarantined = sum(r.rows_quarantined for r in results)
                    console.print(
                        f"CRM API {config.base_url}: {len(results)} page(s), {loaded:,} row(s) "
                        f"loaded, {quarantined:,} quarantined"
                    )
                except CrmApiError as ex:
                    api_failed = True
                    err_console.print(f"[bold red]error:[/] {ex}", soft_wrap=True)
            report = _load_files(client, settings, source, field_map)
    except FieldMapError as ex:
        err_console.print(f"[bold red]error:[/] {ex}", soft_wrap=True)
        raise typer.Exit(1) from None
    if report is not None:
        _print_report(report)
    if api_failed or (report is not None and not report.ok):
        raise typer.Exit(1)
