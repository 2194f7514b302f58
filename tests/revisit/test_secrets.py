"""Secrets fail closed: `revisit init` writes per-installation secrets (0600), and the
webhook receiver and live delivery refuse the published development defaults off
loopback. Also: DSN passwords never reach output."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from revisit.settings import (
    DEV_SECRETS,
    PROJECT_ROOT,
    WEBHOOK_SECRETS,
    Settings,
    SettingsError,
    read_secrets_file,
    redact_dsn,
)
from tests.conftest import VENV_BIN, run_cli


def test_init_writes_random_secrets_0600_keeps_them_and_rotates_on_request(
    settings: Settings,
) -> None:
    first = run_cli(["init"], settings)
    assert first.returncode == 0, first.stderr
    path = settings.data_dir / "secrets.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = read_secrets_file(path)
    assert set(values) == set(DEV_SECRETS)  # every secret that has a published default
    assert all(values[n] != DEV_SECRETS[n] and len(values[n]) >= 40 for n in values)
    assert len(set(values.values())) == len(values)
    assert all(v not in first.stdout for v in values.values())  # never printed

    again = run_cli(["init"], settings)
    assert again.returncode == 0, again.stderr
    assert read_secrets_file(path) == values  # kept: nothing is overwritten
    assert f"0 secret(s) written, {len(values)} kept" in again.stdout

    path.chmod(0o644)  # a rotation also puts the mode back
    rotated = run_cli(["init", "--rotate"], settings)
    assert rotated.returncode == 0, rotated.stderr
    new = read_secrets_file(path)
    assert set(new) == set(values) and all(new[n] != values[n] for n in new)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_settings_take_the_environment_then_the_file_then_the_defaults(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings().dev_default_secrets(DEV_SECRETS) == list(DEV_SECRETS)  # no file yet
    assert run_cli(["init"], settings).returncode == 0
    values = read_secrets_file(settings.secrets_path)
    from_file = Settings()
    assert from_file.whatsapp_app_secret.get_secret_value() == values["whatsapp_app_secret"]
    assert from_file.ledger_token.get_secret_value() == values["ledger_token"]
    assert from_file.dev_default_secrets(DEV_SECRETS) == []
    monkeypatch.setenv("REVISIT_WHATSAPP_APP_SECRET", "from-the-environment")
    assert Settings().whatsapp_app_secret.get_secret_value() == "from-the-environment"
    assert Settings().telegram_secret_token.get_secret_value() == values["telegram_secret_token"]


def test_webhooks_serve_off_loopback_with_development_secrets_exits_2(settings: Settings) -> None:
    result = run_cli(
        ["webhooks", "serve", "--host", "0.0.0.0", "--port", "0"], settings, timeout=60
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    message = " ".join(result.stderr.split())  # rich wraps long lines
    for name in WEBHOOK_SECRETS:
        assert f"REVISIT_{name.upper()}" in message
    assert "revisit init" in message and "0.0.0.0" in message
    assert "Traceback" not in result.stderr


def _receiver(settings: Settings, host: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVISIT_")}
    env["REVISIT_DATA_DIR"] = str(settings.data_dir)
    return subprocess.Popen(
        [str(VENV_BIN / "python"), "-m", "revisit.webhook_receiver", "--host", host,
         "--port", "0", "--workers", "1"],
        env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.fixture
def stop_later() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.communicate()


def _listening_port(proc: subprocess.Popen[str]) -> int:
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("LISTENING "):
            return int(line.split()[1])
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"the receiver did not start: {proc.communicate()[1]}")


def _whatsapp_post(port: int, secret: str) -> int:
    body = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return httpx.post(
        f"http://127.0.0.1:{port}/webhooks/whatsapp", content=body, timeout=10,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
    ).status_code  # fmt: skip


def _telegram_post(port: int, token: str) -> int:
    return httpx.post(
        f"http://127.0.0.1:{port}/webhooks/telegram", json={"update_id": 1}, timeout=10,
        headers={"X-Telegram-Bot-Api-Secret-Token": token},
    ).status_code  # fmt: skip


def test_after_init_the_receiver_serves_off_loopback_and_refuses_the_dev_secrets(
    settings: Settings, stop_later: list[subprocess.Popen[str]]
) -> None:
    refused = _receiver(settings, "0.0.0.0")
    stop_later.append(refused)
    _out, err = refused.communicate(timeout=60)
    assert refused.returncode == 2 and "REVISIT_WHATSAPP_APP_SECRET" in err, err

    assert run_cli(["init"], settings).returncode == 0
    values = read_secrets_file(settings.secrets_path)
    server = _receiver(settings, "0.0.0.0")
    stop_later.append(server)
    port = _listening_port(server)
    assert _whatsapp_post(port, DEV_SECRETS["whatsapp_app_secret"]) in (401, 403)
    assert _telegram_post(port, DEV_SECRETS["telegram_secret_token"]) in (401, 403)
    assert _whatsapp_post(port, values["whatsapp_app_secret"]) == 200
    assert _telegram_post(port, values["telegram_secret_token"]) == 200


def test_live_delivery_to_a_remote_provider_with_a_development_token_exits_2(
    settings: Settings,
) -> None:
    env = {
        "REVISIT_WHATSAPP_BASE_URL": "https://graph.facebook.com",
        "REVISIT_TELEGRAM_BASE_URL": "http://127.0.0.1:8792",  # loopback: dev token allowed
        "REVISIT_SMS_BASE_URL": "https://sms.example.com",
        "REVISIT_LEDGER_BASE_URL": "http://10.0.0.7:8794",
        "REVISIT_WHATSAPP_TOKEN": DEV_SECRETS["whatsapp_token"],
        "REVISIT_TELEGRAM_BOT_TOKEN": DEV_SECRETS["telegram_bot_token"],
        "REVISIT_SMS_TOKEN": "issued-by-the-gateway",
        "REVISIT_LEDGER_TOKEN": DEV_SECRETS["ledger_token"],
    }
    for command in (["activation", "deliver"], ["activation", "run"]):
        result = subprocess.run(
            [str(VENV_BIN / "revisit"), *command],
            env={**{k: v for k, v in os.environ.items() if not k.startswith("REVISIT_")},
                 "REVISIT_DATA_DIR": str(settings.data_dir), **env},
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        message = " ".join(result.stderr.split())
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "REVISIT_WHATSAPP_TOKEN" in message and "REVISIT_LEDGER_TOKEN" in message
        assert "REVISIT_SMS_TOKEN" not in message and "REVISIT_TELEGRAM_BOT_TOKEN" not in message
        assert "revisit init" in message
        assert not (settings.data_dir / "state").exists()  # refused before opening anything


def test_refusal_rules(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.refuse_dev_secrets(webhook_host="127.0.0.1", providers=("whatsapp", "ledger"))
    settings.refuse_dev_secrets(webhook_host="localhost")
    settings.refuse_dev_secrets(webhook_host="::1")
    for host in ("0.0.0.0", "::", "10.1.2.3", "hooks.example.com"):
        with pytest.raises(SettingsError, match="REVISIT_SMS_WEBHOOK_SECRET"):
            settings.refuse_dev_secrets(webhook_host=host)
    monkeypatch.setenv("REVISIT_LEDGER_BASE_URL", "https://ledger.example.com/api")
    with pytest.raises(SettingsError, match="REVISIT_LEDGER_TOKEN") as refused:
        Settings().refuse_dev_secrets(providers=("whatsapp", "ledger"))
    assert "WHATSAPP" not in str(refused.value)  # whatsapp stays on its loopback stand-in
    monkeypatch.setenv("REVISIT_LEDGER_TOKEN", "issued")
    # Real customers' data leaves the machine: their ids must not use the published key.
    with pytest.raises(SettingsError, match="REVISIT_CUSTOMER_ID_KEY") as refused:
        Settings().refuse_dev_secrets(providers=("whatsapp", "ledger"))
    assert "LEDGER_TOKEN" not in str(refused.value)
    monkeypatch.setenv("REVISIT_CUSTOMER_ID_KEY", "per-installation")
    Settings().refuse_dev_secrets(providers=("whatsapp", "ledger"))
    # The CRM API: the development token only against a loopback stand-in.
    Settings().refuse_dev_secrets(crm_api_url="http://127.0.0.1:8791/api")
    with pytest.raises(SettingsError, match="REVISIT_CRM_API_TOKEN"):
        Settings().refuse_dev_secrets(crm_api_url="https://crm.example.com/api")
    with pytest.raises(SettingsError, match="REVISIT_CRM_API_TOKEN"):
        Settings().crm_api("https://crm.example.com/api")  # what the sync asset composes
    monkeypatch.setenv("REVISIT_CRM_API_TOKEN", "issued-by-the-crm")
    assert Settings().crm_api("https://crm.example.com/api").token == "issued-by-the-crm"


def test_ingest_crm_against_a_remote_api_with_the_development_token_exits_2(
    settings: Settings,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVISIT_")}
    env.update(REVISIT_DATA_DIR=str(settings.data_dir),
               REVISIT_CRM_API_URL="https://crm.example.com/api")  # fmt: skip
    result = subprocess.run(
        [str(VENV_BIN / "revisit"), "ingest", "crm"], env=env, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    message = " ".join(result.stderr.split())
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "REVISIT_CRM_API_TOKEN" in message and "REVISIT_CUSTOMER_ID_KEY" in message
    assert "crm.example.com" in message and "revisit init" in message
    assert "Traceback" not in result.stderr
    assert not (settings.data_dir / "warehouse").exists()  # refused before opening anything


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql+psycopg://revisit:s3cr:t@db.internal:5432/state",
         "postgresql+psycopg://revisit:***@db.internal:5432/state"),
        ("postgresql://u:p%40ss@h/db?sslmode=require&password=x",
         "postgresql://u:***@h/db?sslmode=require&password=***"),
        ("https://default:pw@ch.internal:8443/analytics", "https://default:***@ch.internal:8443/analytics"),
        ("postgresql://revisit@h/db", "postgresql://revisit@h/db"),
        ("sqlite:////var/lib/revisit/state.db", "sqlite:////var/lib/revisit/state.db"),
        ("chdb:///srv/warehouse", "chdb:///srv/warehouse"),
    ],
)  # fmt: skip
def test_redact_dsn(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown


def test_doctor_and_dsn_errors_never_show_a_password(settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVISIT_")}
    env.update(
        REVISIT_DATA_DIR=str(settings.data_dir),
        REVISIT_STATE_DSN="postgresql+psycopg://revisit:hunter2-state@db.internal/state",
    )
    doctor = subprocess.run(
        [str(VENV_BIN / "revisit"), "doctor", "--json"], env=env, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    report = json.loads(doctor.stdout)
    assert report["state_dsn"] == "postgresql+psycopg://revisit:***@db.internal/state"
    assert "development defaults" in report["secrets"]
    bad = subprocess.run(
        [str(VENV_BIN / "revisit"), "doctor"], cwd=PROJECT_ROOT, capture_output=True, text=True,
        env={**env, "REVISIT_WAREHOUSE_DSN": "ftp://default:hunter2-wh@ch/db"}, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2, bad.stderr
    for output in (doctor.stdout + doctor.stderr, bad.stdout + bad.stderr):
        assert "hunter2" not in output
    assert "default:***@ch" in bad.stderr


def test_dev_secret_values_are_the_settings_defaults() -> None:
    # The refusal compares against these: they must be the published defaults.
    assert DEV_SECRETS["whatsapp_app_secret"] == "dev-whatsapp-app-secret"
    assert DEV_SECRETS["ledger_token"] == "dev-ledger-token"
    assert set(WEBHOOK_SECRETS) <= set(DEV_SECRETS)
