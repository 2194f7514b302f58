"""Every table consumers read is described once (its dbt contract), and drift fails a test.

- Consumers (ML, activation, exports) read marts only, and exactly the marts their dbt
  exposure lists.
- The DDL tests and benchmarks create is generated from the manifest (`warehouse.contracts`).
- A real `dbt build` makes every contracted table exactly as declared, and the generated
  DDL makes the same shape.
- Drift: changing one mart column's type in a scratch copy of the project changes the
  generated DDL with it, and `dbt build` then fails with the contract error because the
  model's SQL no longer agrees with its contract.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

import warehouse
from activation.delivery import messenger_events_lookup
from warehouse import contracts
from warehouse.config import PROJECT_ROOT, DbtConfig
from warehouse.contracts import ContractError, Contracts
from warehouse.dbt_runner import run_dbt
from warehouse.load import load_batch, prepare_raw

# Consumer code whose SQL may read only marts (plus the ml.* and activation.* it owns).
CONSUMER_CODE = [
    *sorted((PROJECT_ROOT / "ml").rglob("*.py")),
    *sorted((PROJECT_ROOT / "activation").rglob("*.py")),
    PROJECT_ROOT / "warehouse" / "exports.py",
]
# The dbt exposure of each consumer and the modules whose SQL it covers.
EXPOSURES = {
    "revisit_model": ["ml/features.py"],
    "activation_planner": ["activation/planner.py", "activation/candidates.py"],
    "activation_delivery": ["activation/delivery.py", "activation/reconcile.py"],
    "marketer_exports": ["warehouse/exports.py"],
}
# A table below the marts named in SQL, unless it is written to (INSERT INTO raw.x).
BELOW_MARTS = re.compile(r"(?<!INSERT INTO )\b(raw|staging|intermediate)\.[A-Za-z_]\w*", re.I)
MARTS_TABLE = re.compile(r"\bmarts\.([A-Za-z_]\w*)")


def _sql_strings(path: Path) -> list[tuple[int, str]]:
    """Every string literal of a module (f-string pieces too), docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_consumers_read_no_table_below_the_marts() -> None:
    reads = [
        f"{path.relative_to(PROJECT_ROOT)}:{line}: {match.group(0)}"
        for path in CONSUMER_CODE
        for line, text in _sql_strings(path)
        for match in BELOW_MARTS.finditer(text)
    ]
    assert reads == [], "consumers must read marts.* only (add a mart, see exposures.yml)"


def test_the_scan_sees_sql_in_strings_and_f_strings(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        '"""Docstrings may name raw.messenger_events."""\n'
        "raw = {}\n"
        "raw.get('x')  # Python names are not reads\n"
        'SQL = "SELECT * FROM staging.stg_crm__customers"\n'
        'WRITE = "INSERT INTO raw.messenger_events VALUES"\n'
        "def f(k):\n"
        '    return f"SELECT {k} FROM intermediate.int_appointments"\n'
    )
    found = [m.group(0) for _, s in _sql_strings(module) for m in BELOW_MARTS.finditer(s)]
    assert found == ["staging.stg_crm__customers", "intermediate.int_appointments"]


@pytest.mark.parametrize("exposure", sorted(EXPOSURES))
def test_each_exposure_lists_exactly_the_marts_its_consumer_reads(exposure: str) -> None:
    read = {
        f"marts.{match.group(1)}"
        for rel in EXPOSURES[exposure]
        for _, text in _sql_strings(PROJECT_ROOT / rel)
        for match in MARTS_TABLE.finditer(text)
    }
    assert read == set(contracts.exposure_tables(exposure))


def test_every_mart_a_consumer_reads_is_contracted() -> None:
    loaded = contracts.load()
    for exposure in EXPOSURES:
        for name in loaded.exposure_tables(exposure):
            table = loaded.table(name)
            assert table.columns and all(c.data_type for c in table.columns), name
    assert loaded.table("marts.fct_messenger_status_events").materialized == "view"
    with pytest.raises(ContractError, match="declares no contract"):
        loaded.table("marts.partner_dashboard")


def test_generated_ddl_uses_the_declared_types_and_the_model_engine() -> None:
    ddl = contracts.create_table_sql("marts.fct_visits")
    assert "`visited_at` DateTime64(3, 'UTC')" in ddl
    assert "ENGINE = ReplacingMergeTree(updated_at)" in ddl  # readers query it with FINAL
    view = contracts.table("marts.fct_appointments")
    assert view.create_table_sql().endswith("ENGINE = MergeTree\nORDER BY tuple()")
    assert contracts.columns("marts.dim_customers")[:3] == [
        ("business_id", "String"),
        ("customer_id", "String"),
        ("phone_e164", "String"),
    ]


def test_a_contract_without_types_is_refused() -> None:
    node = {
        "unique_id": "model.revisit.m",
        "resource_type": "model",
        "name": "m",
        "alias": "m",
        "schema": "marts",
        "original_file_path": "dbt_project/models/marts/m.sql",
        "config": {"materialized": "table", "contract": {"enforced": True}},
        "columns": {"a": {"name": "a", "data_type": "String"}, "b": {"name": "b"}},
    }
    with pytest.raises(ContractError, match=r"marts\.m .*\['b'\]"):
        Contracts({"nodes": {node["unique_id"]: node}, "exposures": {}})


def _describe(client: warehouse.Client, table: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in client.query(f"DESCRIBE TABLE {table}").result_rows]


# --- a real dbt build ------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbtConfig]:
    """The project built by `dbt build` into a fresh embedded warehouse (raw tables empty:
    types do not depend on data). No client stays open between tests."""
    tmp = tmp_path_factory.mktemp("contracts-build")
    config = DbtConfig(warehouse_dsn=f"chdb://{tmp / 'warehouse'}", artifacts_dir=tmp / "dbt")
    with warehouse.connect(config.warehouse_dsn) as client:
        prepare_raw(client)
    run_dbt(["build"], config, capture=True)
    yield config


@pytest.mark.slow
def test_built_tables_match_their_contracts_and_the_generated_ddl(built: DbtConfig) -> None:
    loaded = contracts.load()
    names = loaded.names()
    assert len(names) >= 9
    with warehouse.connect(built.warehouse_dsn) as client:
        client.command("CREATE DATABASE IF NOT EXISTS fixtures")
        for name in names:
            declared = loaded.columns(name)
            assert _describe(client, name) == declared, name
            fixture = "fixtures." + name.replace(".", "__")
            client.command(loaded.create_table_sql(name, table=fixture))
            assert _describe(client, fixture) == declared, fixture


@pytest.mark.slow
def test_status_mart_sees_a_webhook_loaded_after_the_build(built: DbtConfig) -> None:
    """fct_messenger_status_events is a view: delivery's crash lookup needs no dbt run."""
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    event = pd.DataFrame(
        {
            "provider": ["whatsapp"],
            "event_id": ["wh-1"],
            "event_type": ["status"],
            "provider_message_id": ["wamid.1"],
            "message_id": ["key-1"],
            "status": ["delivered"],
            "recipient": ["+79161234567"],
            "text": [None],
            "error_code": [None],
            "occurred_at": [now],
            "received_at": [now],
            "payload": ["{}"],
        }
    )
    with warehouse.connect(built.warehouse_dsn) as client:
        lookup = messenger_events_lookup(client)
        assert lookup("key-1") is False
        load_batch(client, "messenger_events", event, batch_id="late", source="test")
        assert lookup("key-1") == "wamid.1"
        assert lookup("other") is False


# --- drift -----------------------------------------------------------------------------


def _scratch_project(root: Path) -> Path:
    """A copy of the dbt project (dbt_project.yml + dbt_project/) without run artefacts."""
    root.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "dbt_project.yml", root / "dbt_project.yml")
    shutil.copytree(
        PROJECT_ROOT / "dbt_project",
        root / "dbt_project",
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml"),
    )
    return root


@pytest.mark.slow
def test_changing_a_mart_column_type_changes_the_fixtures_and_fails_the_build(
    tmp_path: Path,
) -> None:
    project = _scratch_project(tmp_path / "project")
    config = DbtConfig(
        warehouse_dsn=f"chdb://{tmp_path / 'warehouse'}",
        artifacts_dir=tmp_path / "dbt",
        project_dir=project,
    )
    contract = project / "dbt_project" / "models" / "marts" / "dim_customers.yml"
    text = contract.read_text()
    declared = "      - name: visits\n        data_type: UInt64\n"
    assert declared in text
    contract.write_text(text.replace(declared, declared.replace("UInt64", "UInt32")))

    # The generated DDL follows the scratch contract: nothing is typed anywhere else.
    before = contracts.create_table_sql("marts.dim_customers")
    after = contracts.create_table_sql("marts.dim_customers", config)
    assert "`visits` UInt64" in before
    assert after == before.replace("`visits` UInt64", "`visits` UInt32")
    with warehouse.connect(config.warehouse_dsn) as client:
        prepare_raw(client)
        contracts.create_tables(client, ["marts.dim_customers"], config)  # a test fixture
        assert ("visits", "UInt32") in _describe(client, "marts.dim_customers")
        client.command("DROP TABLE marts.dim_customers")

    # dbt refuses to build the mart: its SQL still makes visits a UInt64.
    with pytest.raises(subprocess.CalledProcessError) as failure:
        run_dbt(["build", "--select", "+dim_customers"], config, capture=True)
    output = failure.value.stdout
    assert "enforced contract that failed" in output
    assert re.search(r"visits\s*\|\s*UInt64\s*\|\s*UInt32\s*\|\s*data type mismatch", output)
    with warehouse.connect(config.warehouse_dsn) as client:
        assert not client.command("EXISTS TABLE marts.dim_customers")
