"""The `cluster` dbt target and the cluster raw-table DDL, checked without a cluster.

No ClickHouse cluster runs here. dbt-clickhouse opens a connection even to compile, so dbt
runs against the HTTP stand-in of clickhouse-server (`simulation.clickhouse_http`, a single
embedded engine): `dbt compile --target cluster` must compile every model, and the DDL the
target would issue (dbt-clickhouse's ON CLUSTER clause and our engine macro) is rendered by
`dbt run-operation cluster_ddl_preview`. dbt-clickhouse lists relations through
`clusterAllReplicas(<cluster>, system.tables)`, so the stand-in's engine gets a config file
declaring the cluster as one local shard (chDB takes `?config-file=` in its path). The
raw-table DDL is parsed by the engine's own parser (`formatQuery`), which needs no cluster.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from revisit.settings import Settings
from simulation.clickhouse_http import running
from warehouse.client import connect
from warehouse.config import DbtConfig
from warehouse.dbt_runner import dbt_env
from warehouse.schema import DATABASES, RAW_TABLES, cluster_ddl, cluster_raw_table_ddl

CLUSTER = "revisit"
# The stand-in engine as the only node of cluster `revisit` (tcp_port only marks it local).
ONE_NODE_CLUSTER = f"""<clickhouse>
  <tcp_port>9000</tcp_port>
  <remote_servers><{CLUSTER}><shard><replica>
    <host>localhost</host><port>9000</port>
  </replica></shard></{CLUSTER}></remote_servers>
</clickhouse>
"""


def test_cluster_raw_ddl_is_on_cluster_replicated_and_distributed(settings: Settings) -> None:
    statements = cluster_ddl(CLUSTER)
    assert len(statements) == len(DATABASES) + 2 * len(RAW_TABLES)
    assert all(f"ON CLUSTER `{CLUSTER}`" in s for s in statements)
    for name in RAW_TABLES:
        local, distributed = cluster_raw_table_ddl(name, CLUSTER)
        assert f"raw.{name}_local" in local
        assert "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/raw/" in local
        assert f"'{{replica}}', _version) ORDER BY {RAW_TABLES[name][1]}" in local
        assert f"ENGINE = Distributed('{CLUSTER}', raw, {name}_local, cityHash64(" in distributed
    # Valid ClickHouse: the engine's parser accepts every statement (nothing is executed).
    with connect(settings.warehouse_dsn) as client:
        for statement in statements:
            formatted = client.query("SELECT formatQuery({q:String})", parameters={"q": statement})
            assert "CLUSTER" in formatted.result_rows[0][0]


@pytest.mark.slow
def test_dbt_compile_target_cluster_compiles_every_model_with_on_cluster_replicated_ddl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbt.cli.main import dbtRunner

    config_file = tmp_path / "cluster.xml"
    config_file.write_text(ONE_NODE_CLUSTER)
    logged: list[str] = []

    def keep_macro_logs(event: Any) -> None:
        if event.info.name == "JinjaLogInfo":
            logged.append(event.info.msg)

    with running(Path(f"{tmp_path / 'standin'}?config-file={config_file}")) as url:
        config = DbtConfig(warehouse_dsn=url, target="server", artifacts_dir=tmp_path / "dbt")
        for name, value in {**dbt_env(config), "REVISIT_DBT_TARGET": "cluster"}.items():
            monkeypatch.setenv(name, value)
        common = ["--project-dir", str(config.project_dir),
                  "--profiles-dir", str(config.profiles_dir), "--target", "cluster"]  # fmt: skip
        # In process, parsed once for both commands (a parse is most of a dbt run's time).
        parsed = dbtRunner().invoke(["parse", *common])
        assert parsed.success, parsed.exception
        runner = dbtRunner(manifest=parsed.result, callbacks=[keep_macro_logs])
        compiled = runner.invoke(["compile", *common])
        assert compiled.success, compiled.exception
        preview = runner.invoke(["run-operation", "cluster_ddl_preview", *common])
        assert preview.success, preview.exception

    models = {
        node.name: node for node in parsed.result.nodes.values() if node.resource_type == "model"
    }
    assert len(models) > 40
    done = {
        result.node.name: result.status
        for result in compiled.result.results
        if result.node.resource_type == "model"
    }
    assert done == dict.fromkeys(models, "success")
    assert all(r.node.compiled_code for r in compiled.result.results if r.node.name in models)

    # dbt-clickhouse's materializations call `engine_clause()`: ours wins over the adapter's.
    assert any(
        line.startswith("ENGINE_CLAUSE engine = ReplicatedMergeTree('/clickhouse/tables/")
        for line in logged
    ), logged
    ddl = dict(re.findall(r"^DDL (\w+) \| (.+)$", "\n".join(logged), re.MULTILINE))
    tables = {name for name, node in models.items() if node.config.materialized != "view"}
    assert tables and set(ddl) == tables
    for statement in ddl.values():
        assert f'ON CLUSTER "{CLUSTER}"' in statement, statement
        engine = statement.split(" engine = ", 1)[1]
        assert engine.startswith("Replicated") and "MergeTree(" in engine, statement
        assert "'/clickhouse/tables/{database}/{table}/{uuid}', '{replica}'" in engine
    # A model's own engine arguments survive (e.g. ReplacingMergeTree's version column).
    versioned = {
        name: node.config.get("engine")
        for name, node in models.items()
        if "(" in (node.config.get("engine") or "") and "()" not in node.config.get("engine")
    }
    assert versioned
    for name, engine in versioned.items():
        args = engine.split("(", 1)[1].rstrip(")")
        assert ddl[name].rstrip().endswith(f", {args})"), ddl[name]
