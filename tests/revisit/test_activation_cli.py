"""`revisit activation …` in a child process, on a small prepared warehouse and a SQLite
outbox, delivering to the provider stand-ins on 127.0.0.1.

The warehouse has the tables of the activation exposures (created from their contracts,
as tests/activation does) and one business: six customers with an appointment in an hour
(one opted out), whose zone puts them at 13:00 local so the 2-hour reminder is due now,
and two cashback accruals. The tests run in file order on the module's warehouse,
outbox and stand-ins: dry run, refusals, a live run, dead letters, failures.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Iterator
from decimal import Decimal

import pytest

import warehouse
from activation.contracts import Channel, PlannedMessage, State, idempotency_key
from activation.outbox import Completion, Outbox
from revisit.activation_commands import mask_phone, mask_text
from revisit.settings import PROJECT_ROOT, Settings
from simulation.providers import TOKENS, StandinCluster, run_standins
from tests.activation.planner.conftest import Fixtures, create_input_tables
from tests.conftest import VENV_BIN
from warehouse import contracts
from warehouse.load import prepare_raw

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
BUSINESS = "B1"
PHONES = [f"+7916000{i:04d}" for i in range(6)]  # customer c0 opted out
NAME = "Анна Петрова"
TRIGGER = "appointment_reminder_2h"


def _zone_at_13h(now: dt.datetime) -> str:
    """A fixed-offset zone where it is 13:00-ish now: outside every quiet hour."""
    offset = (13 - now.hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir = tmp_path_factory.mktemp("activation_cli") / "data"
    settings = Settings(data_dir=data_dir, warehouse_dsn="", state_dsn="")
    zone = _zone_at_13h(NOW)
    with warehouse.connect(settings.warehouse_dsn) as client:
        prepare_raw(client)
        create_input_tables(client)
        contracts.create_tables(client, contracts.exposure_tables("activation_delivery"))
        fx = Fixtures(client)
        for i, phone in enumerate(PHONES):
            fx.customer(BUSINESS, f"c{i}", phone_e164=phone, full_name=NAME, timezone=zone,
                        opted_out=i == 0)  # fmt: skip
            fx.appointment(BUSINESS, f"a{i}", f"c{i}", NOW + dt.timedelta(hours=1))
        for i in range(2):
            _ledger_entry(fx, f"ev{i}")
        fx.flush()
    return settings


def _ledger_entry(fx: Fixtures, event: str) -> None:
    fx.add(
        "marts.cashback_ledger", entry_id=f"P0001:{event}", partner_id="P0001",
        source_event_id=event, event_type="accrual", customer_id=f"cust-{event}",
        phone_e164="+79160000001", amount=Decimal("12.30"), currency="RUB",
        occurred_at=NOW - dt.timedelta(days=1), offer_id=None, loaded_at=NOW,
    )  # fmt: skip


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinCluster]:
    with run_standins(jsonl_dir=tmp_path_factory.mktemp("standins")) as cluster:
        yield cluster


def provider_env(cluster: StandinCluster) -> dict[str, str]:
    """The provider settings pointing at the stand-ins (what production sets for real)."""
    token_names = {"whatsapp": "WHATSAPP_TOKEN", "telegram": "TELEGRAM_BOT_TOKEN",
                   "sms": "SMS_TOKEN", "ledger": "LEDGER_TOKEN"}  # fmt: skip
    env = {}
    for provider, url in cluster.urls.items():
        env[f"REVISIT_{provider.upper()}_BASE_URL"] = url
        env[f"REVISIT_{token_names[provider]}"] = TOKENS[provider]
    return env


def cli(
    settings: Settings, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed `revisit activation …` on the module's data directory (plus `env`)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("REVISIT_")}
    base.update(REVISIT_DATA_DIR=str(settings.data_dir), COLUMNS="200", **(env or {}))
    return subprocess.run(
        [str(VENV_BIN / "revisit"), "activation", *args], env=base, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def outbox_counts(settings: Settings) -> dict[str, dict[str, int]]:
    result = cli(settings, "status", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_masking_keeps_the_first_and_last_four_digits_only() -> None:
    assert mask_phone("+79161234567") == "+7916***4567"
    assert mask_phone("+4915123456789") == "+4915***6789"
    assert mask_text("Анна, call +79161234567", ["Анна Петрова"]) == "‹name›, call +7916***4567"


def test_dry_run_plan_prints_counts_and_masked_examples(prepared: Settings) -> None:
    result = cli(prepared, "plan", "--dry-run", "--trigger", TRIGGER)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "nothing was stored or sent" in out
    row = next(line for line in out.splitlines() if TRIGGER in line and "opted_out" in line)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[:4] == [TRIGGER, "5", "0", "1"]  # trigger, planned, holdout, excluded
    assert cells[4] == "opted_out 1"
    assert "whatsapp" in out and "+7916***000" in out
    assert not any(p in out for p in PHONES) and "Анна" not in out and "Петрова" not in out
    assert outbox_counts(prepared) == {"message": {}, "accrual": {}}  # stored nothing


def test_live_sends_without_provider_settings_exit_2_naming_them(prepared: Settings) -> None:
    for command in (["deliver"], ["run", "--trigger", TRIGGER]):
        result = cli(prepared, *command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "REVISIT_WHATSAPP_TOKEN" in result.stderr and "--dry-run" in result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 3
    # A dry run needs none: it plans, counts and reconciles the plan, and stores nothing.
    dry = cli(prepared, "run", "--dry-run", "--trigger", TRIGGER)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "reconcile passed" in dry.stdout
    assert outbox_counts(prepared) == {"message": {}, "accrual": {}}


def test_run_delivers_to_the_standins_and_status_shows_them_sent(
    prepared: Settings, standins: StandinCluster
) -> None:
    result = cli(prepared, "run", "--trigger", TRIGGER, env=provider_env(standins))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reconcile passed" in result.stdout
    assert outbox_counts(prepared) == {"message": {"sent": 5}, "accrual": {"sent": 2}}
    outbox = Outbox(prepared.state_dsn)
    try:
        rows = outbox.rows("message")
    finally:
        outbox.dispose()
    assert sorted(r["recipient"].lstrip("+") for r in rows) == [p[1:] for p in PHONES[1:]]
    # The stand-in recorded exactly one delivered message per outbox key.
    assert standins.admin("whatsapp").effects() == {r["idempotency_key"]: 1 for r in rows}
    assert len(standins.admin("ledger").effects()) == 2
    table = cli(prepared, "status")
    assert table.returncode == 0 and "sent" in table.stdout and "message" in table.stdout
    assert cli(prepared, "reconcile", env=provider_env(standins)).returncode == 0


def _plant_dead_row(settings: Settings) -> str:
    """A WhatsApp message that went dead (permanently rejected), as delivery leaves one."""
    key = idempotency_key("winback", BUSINESS, "c9", "2026-W47")
    outbox = Outbox(settings.state_dsn)
    try:
        outbox.enqueue([PlannedMessage(
            idempotency_key=key, campaign_id=f"winback-{BUSINESS}-2026-W47", trigger="winback",
            business_id=BUSINESS, customer_id="c9", phone_e164="+79160009999",
            channel=Channel.whatsapp, recipient="+79160009999", template="winback_v1",
            variables={}, text="We miss you", send_at=NOW - dt.timedelta(minutes=1),
            expires_at=NOW + dt.timedelta(days=2),
        )])  # fmt: skip
        [item] = outbox.claim("message", 10, run_token="planted:0", lease_s=60)
        outbox.complete("message", [Completion(
            item.key, "planted:0", State.dead, reason="permanent", provider="whatsapp",
            error_code="131026", last_error="Message undeliverable to +79160009999",
        )])  # fmt: skip
    finally:
        outbox.dispose()
    return key


def test_dead_letters_lists_then_requeue_moves_back_and_deliver_sends(
    prepared: Settings, standins: StandinCluster
) -> None:
    key = _plant_dead_row(prepared)
    listed = cli(prepared, "dead-letters", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["id"], row["provider"], row["code"], row["attempts"]) == (
        key,
        "whatsapp",
        "131026",
        1,
    )
    assert "+7916***9999" in row["reason"] and "9160009999" not in row["reason"]

    requeued = cli(prepared, "dead-letters", "--requeue", key)
    assert requeued.returncode == 0, requeued.stderr
    assert key in requeued.stdout
    assert outbox_counts(prepared)["message"] == {"sent": 5, "planned": 1}
    again = cli(prepared, "dead-letters", "--requeue", key)  # planned now: not a dead letter
    assert again.returncode == 1 and key in again.stderr

    delivered = cli(prepared, "deliver", env=provider_env(standins))
    assert delivered.returncode == 0, delivered.stdout + delivered.stderr
    assert outbox_counts(prepared)["message"] == {"sent": 6}
    assert standins.admin("whatsapp").requests(key)


def test_failed_deliveries_and_a_reconcile_mismatch_exit_1(
    prepared: Settings, standins: StandinCluster
) -> None:
    # A new appointment whose reminder WhatsApp rejects for good (undeliverable number).
    with warehouse.connect(prepared.warehouse_dsn) as client:
        fx = Fixtures(client)
        fx.customer(BUSINESS, "c7", phone_e164="+79160007777", full_name=NAME,
                    timezone=_zone_at_13h(NOW))  # fmt: skip
        fx.appointment(BUSINESS, "a7", "c7", NOW + dt.timedelta(hours=1))
        fx.flush()
    standins.admin("whatsapp").set_faults(undeliverable=["+79160007777", "79160007777"])
    try:
        result = cli(prepared, "run", "--trigger", TRIGGER, env=provider_env(standins))
    finally:
        standins.admin("whatsapp").set_faults(undeliverable=[])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "deliveries failed 1" in result.stderr and "dead-letters" in result.stderr

    # A mart accrual that was never sent to the ledger: reconciliation fails, naming it.
    with warehouse.connect(prepared.warehouse_dsn) as client:
        fx = Fixtures(client)
        _ledger_entry(fx, "ev-late")
        fx.flush()
    report = cli(prepared, "reconcile", env=provider_env(standins))
    assert report.returncode == 1, report.stdout + report.stderr
    assert "FAILED" in report.stdout and "P0001:ev-late" in report.stdout


def test_help_explains_every_command() -> None:
    # In process: help needs no data, and a child process per command costs a second each.
    from typer.testing import CliRunner

    from revisit.cli import app

    runner = CliRunner()
    top = runner.invoke(app, ["activation", "--help"], terminal_width=200)
    assert top.exit_code == 0, top.output
    for command in ("plan", "run", "deliver", "status", "dead-letters", "reconcile"):
        assert command in top.output
        helped = runner.invoke(app, ["activation", command, "--help"], terminal_width=200)
        assert helped.exit_code == 0 and "Usage: " in helped.output, helped.output


def test_help_texts_survive_markdown_rendering() -> None:
    # The CLI renders help as Markdown (so wrapped docstrings reflow): an HTML-looking
    # placeholder such as `<data dir>` would vanish from the output, so none may appear.
    import re

    import typer.main

    from revisit.cli import app

    def walk(command, path):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    offenders = []
    for path, command in walk(typer.main.get_command(app), ["revisit"]):
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        offenders += [(" ".join(path), t) for t in texts if re.search(r"<[A-Za-z/]", t)]
    assert not offenders, offenders
