"""The marketer's report per business and month: RFM grid, segments with actions, segment
trend and migration, campaigns against their holdout, partner offers and dashboard,
cross-business flows, the revisit score — as HTML (one self-contained file), XLSX and PDF.

Reads the marts (and ml.revisit_scores) only; the caller passes the promoted model's
registry metadata, so this library needs no ML import. Files go to
`<out>/<business folder>/report-<YYYY-MM>.<ext>`, the folder named as the segment
exports name theirs (`warehouse.exports.folder_names`); labels follow the business's
country unless a language is given (`warehouse.exports.default_lang`).

This process queries the marts and builds every business's sections (pandas); the
files are written here and in worker processes, which receive the built `Report`s and so
never import pandas, the warehouse client's queries or the sections (about half of a
worker's start). Hence the imports inside `build_report`.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from warehouse.report import html, vega
from warehouse.report.model import Report

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from warehouse.exports import Lang

# Below this many businesses, starting worker processes costs more than it saves.
PARALLEL_FROM = 4
Result = TypeVar("Result")

__all__ = ["ReportError", "ReportFile", "ReportFormat", "build_report", "parse_period"]


class ReportFormat(StrEnum):
    html = "html"
    xlsx = "xlsx"
    pdf = "pdf"


class ReportError(ValueError):
    """The report request cannot be served (unknown business, bad period)."""


@dataclass(frozen=True)
class ReportFile:
    business_id: str
    name: str
    lang: str
    period: str
    path: Path
    empty_sections: tuple[str, ...]


def parse_period(text: str) -> dt.date:
    """'YYYY-MM' → the first day of that month; ReportError otherwise."""
    try:
        return dt.datetime.strptime(text.strip(), "%Y-%m").date()
    except ValueError:
        raise ReportError(f"bad period {text!r}: use YYYY-MM, e.g. 2026-11") from None


def build_report(
    client: Client,
    out_dir: Path,
    *,
    business_id: str | None = None,
    period: dt.date | None = None,
    lang: Lang | str | None = None,
    formats: Sequence[ReportFormat | str] = tuple(ReportFormat),
    model_metadata: dict[str, Any] | None = None,
    workers: int | None = None,
) -> list[ReportFile]:
    """Render the report of one business (`business_id`) or of every business (None or
    "all") for `period` (default: the month of the latest RFM snapshot); returns the
    files written. A business or period without data gets its sections saying so.
    Several businesses render in `workers` processes, this one included (default: one
    per core)."""
    from warehouse.report import queries

    known = queries.businesses(client)
    if business_id in (None, "all"):
        selected = known
    else:
        selected = known[known.business_id == business_id]
        if selected.empty:
            sample = ", ".join(sorted(known.business_id)[:10])
            raise ReportError(
                f"unknown business {business_id!r}: use a business_id of "
                f"marts.dim_businesses ({sample or 'none yet: build the marts first'})"
            )
    kinds = [ReportFormat(f) for f in formats]
    processes = min(workers or os.cpu_count() or 1, len(selected))
    with _pool(processes - 1 if len(selected) >= PARALLEL_FROM else 0, kinds) as pool:
        return _build(client, out_dir, selected, known, period, lang, kinds, model_metadata,
                      pool)  # fmt: skip


@contextmanager
def _pool(workers: int, kinds: list[ReportFormat]) -> Iterator[ProcessPoolExecutor | None]:
    """Worker processes besides this one, started and warmed up (imports, the chart
    renderer) while the caller queries the warehouse. Charts are CPU-bound: one process
    per core, the caller's included. Spawned, not forked, so the workers inherit none of
    the embedded engine's threads."""
    if workers < 1:
        yield None
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for _ in range(workers):  # each submission while none is idle starts a process
            pool.submit(_warm_up, kinds)
        try:
            yield pool
        except BaseException:
            pool.shutdown(cancel_futures=True)  # not the queued businesses, after a failure
            raise


def _warm_up(kinds: list[ReportFormat]) -> None:
    """Import the writers asked for; start the chart renderer only for a format that
    draws with it (HTML, PDF): a workbook charts its data natively."""
    if ReportFormat.xlsx in kinds:
        from warehouse.report import xlsx  # noqa: F401
    if ReportFormat.pdf in kinds:
        from warehouse.report import pdf  # noqa: F401
    if ReportFormat.html in kinds or ReportFormat.pdf in kinds:
        vega.warm_up()


def _build(
    client: Client,
    out_dir: Path,
    selected: Any,
    known: Any,
    period: dt.date | None,
    lang: Lang | str | None,
    kinds: list[ReportFormat],
    model_metadata: dict[str, Any] | None,
    pool: ProcessPoolExecutor | None,
) -> list[ReportFile]:
    from warehouse.exports import Lang, default_lang, folder_names, safe_name
    from warehouse.report import queries, sections

    month = (period or queries.latest_period(client)).replace(day=1)
    ids = [str(b) for b in selected.business_id]
    data = queries.load(client, ids, month) if ids else {}
    segment_table = queries.segments(client)
    names = dict(zip(known.business_id, known.name, strict=True))
    folders = folder_names(names.items())
    root = out_dir.resolve()

    def reports() -> Iterator[tuple[Report, Path, list[ReportFormat]]]:
        for row in selected.itertuples(index=False):
            bid = str(row.business_id)
            language = Lang(lang) if lang else default_lang(row.country)
            business = {"business_id": bid, "name": row.name or bid, "currency": row.currency,
                        "names": names}  # fmt: skip
            frames = {key: per_business[bid] for key, per_business in data.items()
                      if bid in per_business}  # fmt: skip
            folder = (root / folders.get(bid, safe_name(bid))).resolve()
            if folder.parent != root:  # safe_name makes this impossible; refuse, not trust
                raise ReportError(f"refusing to write outside {root}: {folder}")
            report = sections.build(business, frames, segment_table, language.value, month,
                                    model_metadata)  # fmt: skip
            yield report, folder, kinds

    if pool is None:
        return [f for job in reports() for f in _write_files(*job)]
    return [f for files in _share(pool, _write_files, reports()) for f in files]


def _share(
    pool: ProcessPoolExecutor, fn: Callable[..., Result], jobs: Iterable[tuple]
) -> list[Result]:
    """`fn(*job)` of every job, in the jobs' order, computed in the pool and in this
    process, which would otherwise wait: each job is queued as soon as `jobs` yields it
    (the workers start on the first ones while this process makes the rest), then the
    workers take jobs from the front of the queue, this process from the back, as long as
    no worker has started the job (a started job's future cannot be cancelled)."""
    made: list[tuple] = []
    futures = []
    for job in jobs:
        made.append(job)
        futures.append(pool.submit(fn, *job))
    here: dict[int, Result] = {}
    for i in reversed(range(len(made))):
        if not futures[i].cancel():
            break  # a worker has it, and every job before it
        here[i] = fn(*made[i])
    return [here[i] if i in here else future.result() for i, future in enumerate(futures)]


def _write_files(report: Report, folder: Path, kinds: list[ReportFormat]) -> list[ReportFile]:
    """The report's files in `folder`, one per format (in a worker or in this process)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in kinds:
        path = folder / f"report-{report.period}.{kind.value}"
        _write(report, kind, path)
        written.append(ReportFile(
            report.business_id, report.business_name, report.lang, report.period, path,
            tuple(s.id for s in report.sections if s.empty),
        ))  # fmt: skip
    return written


def _write(report: Report, kind: ReportFormat, path: Path) -> None:
    # Write beside and rename: a reader (a browser, the asset's consumer) never sees a
    # half-written file.
    partial = path.with_name(f".{path.name}.{time.time_ns()}.part")
    try:
        if kind is ReportFormat.html:
            partial.write_text(html.render(report), encoding="utf-8")
        elif kind is ReportFormat.xlsx:
            from warehouse.report import xlsx  # xlsxwriter only when a workbook is asked for

            xlsx.write(report, partial)
        else:
            from warehouse.report import pdf  # reportlab only when a PDF is asked for

            pdf.write(report, partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
