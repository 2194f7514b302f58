"""The server code path end to end: `REVISIT_WAREHOUSE_DSN=http://…`.

The same demo (ingestion → dbt build → ML scoring → activation dry run) runs twice on
the same seeded sources: once on the embedded engine, once through ClickHouse's HTTP
interface — clickhouse-connect's HTTP client, the server branch of `warehouse.load`
and dbt-clickhouse's own adapter (the `server` target). The server is
`simulation.clickhouse_http`, a test stand-in for clickhouse-server serving the HTTP
interface from the embedded engine in a process of its own. Every table in `marts`
must come out equal. Then a webhook spool loader, a dbt build and an activation
delivery run at once, as separate processes, against that server.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import warehouse
from revisit.settings import PROJECT_ROOT
from simulation.clickhouse_http import running
from simulation.providers import TOKENS, run_standins
from simulation.webhook_replay import receiver_process, replay
from tests.conftest import VENV_BIN

# Two demos and three concurrent processes: more than the suite's default per-test limit
# when the machine is loaded.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

CUSTOMERS = 100  # the smallest ecosystem the demo builds every mart from
# The pseudonymous customer ids hash phones under this key: both runs must share it.
ID_KEY = "server-path-test-id-key"
# Stamped when a row arrived, not derived from the data: they differ between any two runs.
LOAD_TIME_COLUMNS = frozenset({"loaded_at", "received_at"})


@dataclass(frozen=True)
class Runs:
    server_url: str
    server_data: Path
    embedded_data: Path
    query_log: Path
    manifest: dict
    embedded_marts: dict[str, pd.DataFrame]
    server_marts: dict[str, pd.DataFrame]


def revisit_env(data_dir: Path, dsn: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVISIT_")}
    env.update(REVISIT_DATA_DIR=str(data_dir), REVISIT_CUSTOMER_ID_KEY=ID_KEY, COLUMNS="200")
    if dsn:
        env["REVISIT_WAREHOUSE_DSN"] = dsn
    env.update(extra)
    return env


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(VENV_BIN / "revisit"), *args], env=env, cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def finish(process: subprocess.Popen[str], timeout: float = 600) -> str:
    """Wait for the process; its output. Fails the test (with the output) unless it exited 0."""
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"{process.args}: still running after {timeout} s\n{output[-6000:]}")
    assert process.returncode == 0, f"{process.args}: exit {process.returncode}\n{output[-6000:]}"
    return output


def marts_of(dsn: str) -> dict[str, pd.DataFrame]:
    """Every table and view of `marts`, whole."""
    with warehouse.connect(dsn) as client:
        names = client.query(
            "SELECT name FROM system.tables WHERE database = 'marts' ORDER BY name"
        ).result_rows
        return {name: client.query_df(f"SELECT * FROM marts.`{name}`") for (name,) in names}


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in a fixed order, as text, without the load-time columns; floats to 9 digits
    (sums over parallel threads may add in another order)."""
    out = frame.drop(columns=[c for c in frame.columns if c in LOAD_TIME_COLUMNS])
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            out[column] = out[column].map(lambda x: f"{x:.9g}")
    out = out.astype(str)
    return out.sort_values(list(out.columns)).reset_index(drop=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    root = tmp_path_factory.mktemp("server_path")
    embedded_data, server_data = root / "embedded", root / "server"
    query_log = root / "server-queries.log"
    with running(root / "server-warehouse", log=query_log) as url:
        # The two demos are independent processes: run them side by side.
        demo = ["demo", "--customers", str(CUSTOMERS)]
        embedded = start(demo, revisit_env(embedded_data))
        served = start(demo, revisit_env(server_data, url))
        try:
            for process in (embedded, served):
                finish(process, timeout=1200)
        finally:
            for process in (embedded, served):
                if process.poll() is None:
                    process.kill()
                    process.wait()
        manifest = json.loads((server_data / "landing" / "demo" / "manifest.json").read_text())
        yield Runs(
            url, server_data, embedded_data, query_log, manifest,
            embedded_marts=marts_of(f"chdb://{embedded_data / 'warehouse'}"),
            server_marts=marts_of(url),
        )  # fmt: skip


def test_every_mart_is_equal_on_the_embedded_and_the_server_path(runs: Runs) -> None:
    assert sorted(runs.server_marts) == sorted(runs.embedded_marts)
    assert len(runs.embedded_marts) >= 20
    for name, embedded in runs.embedded_marts.items():
        served = runs.server_marts[name]
        assert list(served.columns) == list(embedded.columns), name
        pd.testing.assert_frame_equal(canonical(served), canonical(embedded), obj=f"marts.{name}")
    assert len(runs.embedded_marts["customer_rfm"]) > 50


def test_the_server_run_went_through_http_and_dbt_clickhouse(runs: Runs) -> None:
    """Nothing fell back to the embedded engine; the HTTP insert path and dbt's `server`
    target (dbt-clickhouse's adapter) did the work."""
    assert not (runs.server_data / "warehouse").exists()
    log = runs.query_log.read_text()
    assert '"target_name": "server"' in log  # dbt-clickhouse's query comment
    assert "INSERT INTO raw.crm_appointments" in log and "FORMAT Arrow" in log
    assert "INSERT INTO raw.load_batches" in log and "FORMAT Native" in log
    assert "INSERT INTO ml.revisit_scores" in log or "ml.revisit_scores" in log
    assert not any(line.startswith("5") for line in log.splitlines()), "a 5xx answer"


def test_loader_dbt_and_delivery_run_at_once_on_the_server(runs: Runs, tmp_path: Path) -> None:
    """Three processes share the server: the webhook spool loader, a dbt build and an
    activation run delivering to the provider stand-ins. Each completes, the reloaded
    webhooks collapse onto the rows already there, the rebuilt mart is unchanged."""
    env = revisit_env(runs.server_data, runs.server_url)

    def scalar(sql: str) -> int:
        with warehouse.connect(runs.server_url) as client:
            return int(client.command(sql))

    events_sql = "SELECT count() FROM raw.messenger_events FINAL"
    batches_sql = (
        "SELECT count() FROM raw.load_batches FINAL "
        "WHERE target_table = 'messenger_events' AND status = 'done'"
    )
    events_before, batches_before = scalar(events_sql), scalar(batches_sql)
    # The recorded webhooks again, into the server data directory's spool: new segments
    # for the loader (the receiver does not touch the warehouse).
    with receiver_process(env, cwd=PROJECT_ROOT) as base_url:
        webhooks = sorted((runs.server_data / "landing" / "demo" / "webhooks").glob("*.jsonl"))
        accepted = sum(replay(f, base_url, concurrency=8).accepted for f in webhooks)
    assert accepted > 0

    with run_standins(jsonl_dir=tmp_path) as providers:
        tokens = {"whatsapp": "WHATSAPP_TOKEN", "telegram": "TELEGRAM_BOT_TOKEN",
                  "sms": "SMS_TOKEN", "ledger": "LEDGER_TOKEN"}  # fmt: skip
        provider_env = {**env}
        for provider, url in providers.urls.items():
            provider_env[f"REVISIT_{provider.upper()}_BASE_URL"] = url
            provider_env[f"REVISIT_{tokens[provider]}"] = TOKENS[provider]
        at = f"{runs.manifest['as_of']}T06:00:00+00:00"
        as_of = json.dumps({"as_of_date": runs.manifest["as_of"]})
        dbt = ["dbt", "build", "--select", "customer_rfm", "cashback_ledger", "--vars", as_of]
        processes = {
            "loader": start(["webhooks", "load"], env),
            "dbt": start(dbt, env),
            "delivery": start(["activation", "run", "--at", at], provider_env),
        }
        outputs = {name: finish(process) for name, process in processes.items()}
        ledger_effects = len(providers.admin("ledger").effects())

    assert "reconcile passed" in outputs["delivery"], outputs["delivery"][-3000:]
    status = subprocess.run(
        [str(VENV_BIN / "revisit"), "activation", "status", "--format", "json"],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    accruals = json.loads(status.stdout)["accrual"]
    assert accruals.get("sent", 0) == ledger_effects > 0, (accruals, ledger_effects)
    assert scalar(batches_sql) > batches_before
    assert scalar(events_sql) == events_before
    rebuilt = marts_of(runs.server_url)
    for name in ("customer_rfm", "cashback_ledger"):
        pd.testing.assert_frame_equal(
            canonical(rebuilt[name]), canonical(runs.embedded_marts[name]), obj=f"marts.{name}"
        )
