"""`revisit report`: the marketer's report per business and month (HTML, XLSX, PDF).

Calls `warehouse.report.build_report`, the function the Dagster `marketer_report` asset
calls, with the promoted model's registry metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

import warehouse
from revisit.settings import Settings, get_settings

console = Console()
err_console = Console(stderr=True)


def promoted_metadata(settings: Settings) -> dict[str, Any] | None:
    """The promoted model's registry metadata; None before the first training."""
    from ml.promoted import load_metadata, promoted_version

    version = promoted_version(settings.models_dir)
    return load_metadata(settings.models_dir, version) if version else None


def report(
    business: Annotated[
        str, typer.Option(help="A business id of marts.dim_businesses, or 'all'.")
    ] = "all",
    period: Annotated[
        str | None,
        typer.Option(help="Month YYYY-MM (default: the month of the latest RFM snapshot)."),
    ] = None,
    lang: Annotated[
        str | None,
        typer.Option(help="ru or en (default: from each business's country, RU/BY/KZ… → ru)."),
    ] = None,
    output: Annotated[
        list[str] | None,
        typer.Option("--format", help="html, xlsx or pdf; repeatable (default: all three)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory.")] = None,
) -> None:
    """The marketer's report: RFM grid, segments and actions, trend and migration,
    campaigns vs holdout, partners, cross-business flows, revisit score."""
    from warehouse.exports import Lang
    from warehouse.report import ReportError, ReportFormat, build_report, parse_period

    settings = get_settings()
    try:
        formats = [ReportFormat(f.lower()) for f in output or ReportFormat]
    except ValueError:
        err_console.print(f"[bold red]error:[/] unknown format in {output}: use html, xlsx, pdf")
        raise typer.Exit(2) from None
    try:
        language = Lang(lang.lower()) if lang else None
    except ValueError:
        err_console.print(f"[bold red]error:[/] unknown language {lang!r}: use ru or en")
        raise typer.Exit(2) from None
    target = out or settings.exports_dir / "reports"
    try:
        month = parse_period(period) if period else None
        with warehouse.connect(settings.warehouse_dsn) as client:
            files = build_report(
                client, target, business_id=business, period=month, lang=language,
                formats=formats, model_metadata=promoted_metadata(settings),
            )  # fmt: skip
    except ReportError as ex:
        err_console.print(f"[bold red]error:[/] {ex}")
        raise typer.Exit(2) from None
    if not files:
        err_console.print(
            "[bold red]error:[/] no businesses: build the marts first (`revisit demo`)"
        )
        raise typer.Exit(1)
    for item in files:
        empty = f" (no data yet: {', '.join(item.empty_sections)})" if item.empty_sections else ""
        console.print(f"{item.name} ({item.business_id}, {item.period}, {item.lang}) → "
                      f"{item.path}{empty}", soft_wrap=True)  # fmt: skip
