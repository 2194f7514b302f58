"""`revisit activation …` commands (a Typer sub-app the `revisit` CLI mounts as `activation`).

Each command calls the functions of `activation.run` that the Dagster assets call, on the
settings' warehouse and outbox: nothing here plans, sends or reconciles by itself.

Exit codes: 0 ok; 1 a check failed (deliveries failed or went dead, reconciliation found a
discrepancy, a key to requeue is not a dead letter, the warehouse has no marts to plan
from); 2 bad settings or usage (a missing provider setting for a live send, an unknown
trigger, a bad `--at`).

Output never shows a full phone number or a customer's name: phones are masked
(`+7916***1234`, `warehouse.privacy`), names in sample texts are replaced by `‹name›`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from warehouse.privacy import mask_phone, mask_text

if TYPE_CHECKING:
    from activation.outbox import Outbox
    from activation.providers import ProvidersConfig
    from activation.reconcile import ReconcileReport
    from activation.run import DeliverDueReport, PlanReport
    from revisit.settings import Settings

app = typer.Typer(
    rich_markup_mode="markdown",
    help=(
        "Activation: plan trigger messages and cashback accruals into the outbox, deliver "
        "them to the providers (WhatsApp, Telegram, SMS, loyalty ledger), and look after "
        "the outbox. The same steps the Dagster activation assets run.\n\n"
        "Start with `revisit activation plan --dry-run` (stores and sends nothing), then "
        "`run` for a live pass, `status` and `dead-letters` to see what happened."
    ),
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)

# Live sends go to whatever these name; unset, they are defaults that reach no provider.
PROVIDER_SETTINGS: dict[str, tuple[str, str]] = {
    "whatsapp": ("whatsapp_base_url", "whatsapp_token"),
    "telegram": ("telegram_base_url", "telegram_bot_token"),
    "sms": ("sms_base_url", "sms_token"),
    "ledger": ("ledger_base_url", "ledger_token"),
}
EXAMPLES_PER_TRIGGER = 3


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[
    Format, typer.Option("--format", "-f", help="table (for people) or json (for scripts).")
]
TriggerOption = Annotated[
    list[str] | None,
    typer.Option(
        "--trigger", "-t", metavar="NAME",
        help="Plan only this trigger (repeatable); default: every trigger in "
        "activation/triggers/. Triggers planned together share frequency caps and "
        "priorities.",
    ),
]  # fmt: skip
AtOption = Annotated[
    str | None,
    typer.Option(
        "--at",
        metavar="TIME",
        help="Planning time, ISO 8601 (e.g. 2026-11-01T08:00:00+00:00; no zone = UTC). "
        "Default: now.",
    ),
]


# --- privacy: the one masking module (warehouse.privacy) -----------------------------------


# --- plumbing ------------------------------------------------------------------------------


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
    return typer.Exit(code)


def _settings() -> Settings:
    from revisit.settings import get_settings

    return get_settings()  # SettingsError: one line and exit 2 (revisit.cli:main)


def _live_providers(
    settings: Settings, providers: tuple[str, ...] = tuple(PROVIDER_SETTINGS), *,
    what: str = "live delivery",
) -> ProvidersConfig:  # fmt: skip
    """The providers' config for talking to real providers; SettingsError naming each
    setting that is not set (the defaults are placeholders that reach no provider)."""
    from revisit.settings import SettingsError

    missing = [
        f"REVISIT_{name.upper()}"
        for provider in providers
        for name in PROVIDER_SETTINGS[provider]
        if name not in settings.model_fields_set
    ]
    if missing:
        raise SettingsError(
            f"{what} needs provider settings; not set: {', '.join(missing)} "
            "(the built-in defaults reach no provider). Set them, or add --dry-run."
        )
    settings.refuse_dev_secrets(providers=providers)  # a published token off loopback
    return settings.providers()


@contextmanager
def _outbox(settings: Settings) -> Iterator[Outbox]:
    from activation.run import open_outbox

    with open_outbox(settings.state_dsn) as outbox:
        yield outbox


@contextmanager
def _warehouse(settings: Settings) -> Iterator[Any]:
    """The warehouse for one command (raw tables ensured, as the Dagster resource does).

    An engine error (e.g. the marts were never built) is one line and exit 1."""
    import warehouse
    from warehouse.load import prepare_raw

    with warehouse.connect(settings.warehouse_dsn) as client:
        prepare_raw(client)
        try:
            yield client
        except warehouse.WarehouseError:
            raise
        except Exception as ex:
            from activation.planner import PlannerError

            if isinstance(ex, PlannerError):
                raise _fail(f"{ex} (`revisit demo` or `revisit dbt build`)") from None
            if type(ex).__module__.startswith("clickhouse_connect"):
                first = str(ex).strip().splitlines()[0] if str(ex).strip() else repr(ex)
                hint = ""
                if "UNKNOWN_TABLE" in str(ex) or "does not exist" in str(ex):
                    hint = " — build the marts first (`revisit demo` or `revisit dbt build`)"
                raise _fail(f"warehouse: {first}{hint}") from None
            raise


def _triggers(names: list[str] | None) -> list[Any]:
    from activation.run import select_triggers

    try:
        return select_triggers(names or None)
    except ValueError as ex:
        raise typer.BadParameter(str(ex), param_hint="--trigger") from None


def _now(at: str | None) -> Any:
    from activation.run import planning_time

    try:
        return planning_time(at)
    except ValueError as ex:
        raise typer.BadParameter(f"{at!r} is not ISO 8601 ({ex})", param_hint="--at") from None


def _json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n")


# --- printing reports ----------------------------------------------------------------------


def _print_plan(report: PlanReport) -> None:
    table = Table(
        title=f"Plan at {report.now.isoformat()} ({'dry run' if report.dry_run else 'live'})"
    )
    for col in ("trigger", "planned", "holdout", "excluded", "top exclusions"):
        table.add_column(
            col, justify="right" if col in ("planned", "holdout", "excluded") else "left"
        )
    for t in report.triggers:
        reasons = sorted(t.excluded_by_reason.items(), key=lambda kv: -kv[1])[:3]
        why = f"skipped: {t.skipped}" if t.skipped else ", ".join(f"{r} {n}" for r, n in reasons)
        table.add_row(t.trigger, str(t.planned), str(t.holdout), str(t.excluded), why)
    console.print(table)
    if not report.dry_run:
        console.print(
            f"outbox: {report.inserted} new row(s), {report.already_there} already there "
            f"(left as they were)"
        )


def _print_delivery(report: DeliverDueReport) -> None:
    if report.delivery is not None:
        d = report.delivery
        states = ", ".join(f"{s} {n}" for s, n in sorted(d.states.items())) or "nothing due"
        console.print(f"delivered: {states} ({d.http_requests} request(s), {d.elapsed_s:.1f} s)")
        for provider, counts in sorted(d.by_provider.items()):
            console.print(
                f"  {provider}: " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
            )
        if d.error_codes:
            console.print(
                "  errors: " + ", ".join(f"{c} ×{n}" for c, n in d.error_codes.most_common())
            )
        if report.opt_outs_recorded:
            console.print(f"  provider opt-outs recorded: {report.opt_outs_recorded}")
    _print_outbox(report.outbox)
    _print_reconcile(report.reconciled, brief=True)


def _print_outbox(counts: dict[str, dict[str, int]]) -> None:
    table = Table(title="Outbox")
    for col in ("kind", "state", "rows"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for kind, states in counts.items():
        if not states:
            table.add_row(kind, "(empty)", "0")
        for state, n in sorted(states.items()):
            table.add_row(kind, state, str(n))
    console.print(table)


def _print_reconcile(report: ReconcileReport, *, brief: bool = False) -> None:
    s = report.summary()
    verdict = "[green]passed[/]" if report.passed else "[bold red]FAILED[/]"
    other = "ledger" if s["source"] == "ledger" else "plan"
    console.print(
        f"reconcile {verdict} (mart vs {other}): {s['matched']} of {s['mart_entries']} mart "
        f"accrual(s) matched; missing in {other} {s['missing_in_ledger']} "
        f"({s['in_flight']} in flight), missing in mart {s['missing_in_mart']}, amount "
        f"mismatch {s['amount_mismatch']}, duplicates {s['duplicates']}",
        highlight=False,
    )
    if not brief:
        for line in report.problems():
            console.print(f"  {line}", highlight=False)


def _delivery_exit(report: DeliverDueReport) -> None:
    """Exit 1 when rows failed or went dead, or (live) reconciliation failed."""
    problems = []
    if report.failures:
        problems.append(
            "deliveries "
            + ", ".join(f"{s} {n}" for s, n in sorted(report.failures.items()))
            + " (see `revisit activation dead-letters`)"
        )
    if not report.reconciled.passed:
        problems.append("reconciliation failed: " + "; ".join(report.reconciled.problems()))
    if problems:
        raise _fail("; ".join(problems))


# --- commands ------------------------------------------------------------------------------


@app.command()
def plan(
    trigger: TriggerOption = None,
    at: AtOption = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Only count and show examples; store nothing."),
    ] = False,
) -> None:
    """Plan trigger messages (who gets which message, when, on which channel) into the outbox.

    Consent, frequency caps, quiet hours, holdouts and duplicates are applied; a key
    already in the outbox is left as it is, so planning twice is safe. Nothing is sent:
    `deliver` (or `run`) sends. With --dry-run, prints counts per trigger and channel and
    a few examples (phones and names masked) and stores nothing.
    """
    settings = _settings()
    specs, now = _triggers(trigger), _now(at)
    if dry_run:
        _dry_plan(settings, specs, now)
        return
    from activation.run import plan as plan_triggers

    with _outbox(settings) as outbox, _warehouse(settings) as client:
        report = plan_triggers(client, specs, now=now, outbox=outbox, dry_run=False)
    _print_plan(report)


def _dry_plan(settings: Settings, specs: list[Any], now: Any) -> None:
    # The dry-run report itself (activation.dry_run, what `activation.run.plan(dry_run=True)`
    # runs): its samples carry customer ids, which the masked examples need.
    from activation.dry_run import dry_run

    with _warehouse(settings) as client:
        report = dry_run(client, specs, now)
        people = _people(client, {(s.business_id, s.customer_id) for s in report.samples})
    console.print(
        f"Dry run at {report.now.isoformat()}: {report.candidates} candidate(s) "
        f"in {report.seconds:.2f} s — nothing was stored or sent."
    )
    by_trigger: dict[str, dict[str, int]] = {}
    for c in report.by_trigger:
        by_trigger.setdefault(c.key["trigger"], {})[c.key["decision"]] = c.n
    table = Table(title="By trigger")
    for col in ("trigger", "planned", "holdout", "excluded", "top exclusions"):
        table.add_column(
            col, justify="right" if col in ("planned", "holdout", "excluded") else "left"
        )
    for spec in specs:
        d = by_trigger.get(spec.name, {})
        reasons = [f"{e.reason} {e.n}" for e in report.exclusions if e.trigger == spec.name][:3]
        skipped = report.skipped.get(spec.name)
        table.add_row(
            spec.name, str(d.get("planned", 0)), str(d.get("holdout", 0)),
            str(d.get("excluded", 0)), f"skipped: {skipped}" if skipped else ", ".join(reasons),
        )  # fmt: skip
    console.print(table)
    if report.by_channel:
        table = Table(title="Planned by channel")
        table.add_column("channel")
        table.add_column("messages", justify="right")
        for c in report.by_channel:
            table.add_row(c.key["channel"], str(c.n))
        console.print(table)
    if report.samples:
        table = Table(title="Examples (phones and names masked)")
        for col in ("trigger", "channel", "to", "send at (UTC)", "decision", "text"):
            table.add_column(col)
        for s in report.samples:
            phone, name = people.get((s.business_id, s.customer_id), ("", ""))
            table.add_row(s.trigger, s.channel, mask_phone(phone) or "—", s.send_at, s.decision,
                          mask_text(s.text, [name]))  # fmt: skip
        console.print(table)


def _people(client: Any, keys: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str]]:
    """`{(business_id, customer_id): (phone, full name)}` of the examples, for masking."""
    if not keys:
        return {}
    rows = client.query(
        "SELECT business_id, customer_id, phone_e164, full_name FROM marts.dim_customers "
        "WHERE (business_id, customer_id) IN {k:Array(Tuple(String, String))}",
        parameters={"k": sorted(keys)},
    ).result_rows
    return {(b, c): (p or "", n or "") for b, c, p, n in rows}


@app.command()
def run(
    trigger: TriggerOption = None,
    at: AtOption = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Plan, count accruals and reconcile, but store and send nothing "
            "(needs no provider settings).",
        ),
    ] = False,
) -> None:
    """One full pass: plan the triggers, enqueue cashback accruals, deliver what is due.

    Live, this sends real messages and accruals: it needs the provider settings
    (REVISIT_WHATSAPP_BASE_URL, REVISIT_WHATSAPP_TOKEN, … REVISIT_LEDGER_TOKEN) and
    refuses without them. Exit 1 when deliveries failed or reconciliation failed.
    """
    from activation.run import run_once

    settings = _settings()
    specs, now = _triggers(trigger), _now(at)
    providers = settings.providers() if dry_run else _live_providers(settings)
    with _outbox(settings) as outbox, _warehouse(settings) as client:
        report = run_once(client, outbox, specs, providers, now=now, dry_run=dry_run)
    _print_plan(report.plan)
    a = report.accruals
    console.print(
        f"accruals: {a.accruals} in the cashback ledger mart"
        + (
            ""
            if a.dry_run
            else f"; {a.inserted} new in the outbox, {a.already_there} already there"
        )
    )
    _print_delivery(report.delivery)
    _delivery_exit(report.delivery)


@app.command()
def deliver(
    limit: Annotated[
        int | None, typer.Option(min=1, help="Send at most this many rows (default: all due).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Send nothing; show the outbox and reconcile.")
    ] = False,
) -> None:
    """Send what is due in the outbox to the providers, exactly once per key.

    Also records provider opt-outs (they stop future plans), appends the activation log
    to the warehouse and reconciles accruals with the cashback ledger. Needs the provider
    settings (refuses without them, exit 2). Exit 1 when rows failed or went dead.
    """
    from activation.run import deliver_due

    settings = _settings()
    providers = settings.providers() if dry_run else _live_providers(settings)
    with _outbox(settings) as outbox, _warehouse(settings) as client:
        report = deliver_due(client, outbox, providers, dry_run=dry_run, limit=limit)
    _print_delivery(report)
    _delivery_exit(report)


@app.command()
def status(output: FormatOption = Format.table) -> None:
    """How many outbox rows are in each state, per kind (message, accrual).

    States: planned (waiting to be sent), sending (claimed by a delivery), sent, failed
    (will be retried, or permanently rejected), skipped (holdout or expired), dead (out of
    attempts: see `dead-letters`).
    """
    from activation.run import status as outbox_status

    with _outbox(_settings()) as outbox:
        counts = outbox_status(outbox)
    if output is Format.json:
        _json(counts)
    else:
        _print_outbox(counts)


@app.command("dead-letters")
def dead_letters(
    requeue: Annotated[
        list[str] | None,
        typer.Option(
            "--requeue",
            metavar="ID",
            help="Move this dead row (its idempotency key, as listed) back to planned, "
            "attempts reset; the next `deliver` sends it. Repeatable.",
        ),
    ] = None,
    requeue_all: Annotated[
        bool, typer.Option("--requeue-all", help="Requeue every dead row.")
    ] = False,
    output: FormatOption = Format.table,
) -> None:
    """List outbox rows that went dead (out of attempts or permanently rejected), or requeue.

    Each row shows its provider, error code, last error and attempts. A requeued row keeps
    its idempotency key (providers still deduplicate it) and notes the requeue in its
    reason and last error; a message past its expiry is dropped as expired, not sent late.
    Only dead rows can be requeued: exit 1 if an ID given is not a dead row.
    """
    from activation.run import dead_letters as dead_rows

    if requeue and requeue_all:
        raise typer.BadParameter("give --requeue ID or --requeue-all, not both")
    with _outbox(_settings()) as outbox:
        rows = dead_rows(outbox)
        if requeue or requeue_all:
            wanted = [r["idempotency_key"] for r in rows] if requeue_all else list(requeue or [])
            done = outbox.requeue(wanted)
            console.print(f"requeued {len(done)} dead row(s) to planned: {', '.join(done) or '-'}")
            not_dead = sorted(set(wanted) - set(done))
            if not_dead:
                raise _fail(f"not dead letters, left as they were: {', '.join(not_dead)}")
            return
    listed = [
        {
            "id": r["idempotency_key"],
            "kind": "message" if "channel" in r else "accrual",
            "provider": r["provider"] or (r.get("channel") or "ledger"),
            "code": r["error_code"],
            "reason": mask_text(r["last_error"] or r["reason"] or ""),
            "attempts": r["attempts"],
            "updated_at": r["updated_at"].isoformat() if r["updated_at"] else None,
            "campaign": r["campaign_id"],
        }
        for r in rows
    ]
    if output is Format.json:
        _json(listed)
        return
    if not listed:
        console.print("no dead letters")
        return
    table = Table(title=f"Dead letters ({len(listed)})")
    for col in ("id", "kind", "provider", "code", "attempts", "reason", "updated (UTC)"):
        table.add_column(col, overflow="fold")
    for r in listed:
        table.add_row(r["id"], r["kind"], r["provider"], r["code"] or "", str(r["attempts"]),
                      r["reason"], (r["updated_at"] or "")[:19])  # fmt: skip
    console.print(table)
    console.print("requeue with: revisit activation dead-letters --requeue ID (or --requeue-all)")


@app.command()
def reconcile(
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Check the plan of accruals against the mart instead of the ledger "
            "(needs no provider settings).",
        ),
    ] = False,
    output: FormatOption = Format.table,
) -> None:
    """Compare the loyalty ledger's accruals with the cashback ledger mart and the outbox.

    Passes when every mart accrual is in the ledger once with the same amount and currency
    (accruals still being delivered are fine). Reads the ledger, so it needs the ledger
    settings (REVISIT_LEDGER_BASE_URL, REVISIT_LEDGER_TOKEN). Exit 1 when it does not pass.
    """
    from activation.run import reconcile as reconcile_accruals

    settings = _settings()
    if dry_run:
        with _warehouse(settings) as client:
            report = reconcile_accruals(client, dry_run=True)
    else:
        providers = _live_providers(settings, ("ledger",), what="reading the ledger")
        with _outbox(settings) as outbox, _warehouse(settings) as client:
            report = reconcile_accruals(client, outbox, providers)
    if output is Format.json:
        _json({**report.summary(), "problems": report.problems()})
    else:
        _print_reconcile(report)
    if not report.passed:
        raise typer.Exit(1)
