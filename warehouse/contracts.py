"""Table shapes from the dbt manifest: every table consumers read is described once.

The marts that ML, activation and the exports read declare enforced dbt contracts: each
column's name and ClickHouse type is written once, in the model's YAML
(`dbt_project/models/marts/<model>.yml`), and `dbt build` fails when the model's SQL
produces anything else. This module reads those contracts from the parsed manifest and
turns them into `CREATE TABLE` statements, so tests, benchmarks and standalone
warehouses (`revisit ml evaluate`) create exactly the shapes dbt builds — never a
retyped copy. Seeds read outside dbt (`marts.rfm_segments`) pin their types with
`column_types` instead (seeds cannot declare contracts) and are served the same way.

    from warehouse import contracts

    contracts.columns("marts.dim_customers")       # [("business_id", "String"), ...]
    contracts.create_table_sql("marts.fct_visits")  # CREATE TABLE IF NOT EXISTS ...
    contracts.create_tables(client, contracts.exposure_tables("revisit_model"))

The module-level functions parse the project when its manifest is missing or older than
a project file (`warehouse.dbt_runner.ensure_manifest`; parsing never opens the
warehouse) and cache it per manifest file. `Contracts` works on any manifest, e.g. one
of a scratch copy of the project.

Fixture tables keep the model's own `engine` and `order_by` where it configures them
(`fct_visits` is a ReplacingMergeTree that readers query with FINAL); views and models
without an engine become a plain `MergeTree ORDER BY tuple()`.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warehouse.config import DbtConfig
from warehouse.dbt_runner import ensure_manifest

FIXTURE_ENGINE = "MergeTree"
FIXTURE_ORDER_BY = "tuple()"


class ContractError(LookupError):
    """A table has no usable contract (unknown, not contracted, or a column without type)."""


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    description: str = ""


@dataclass(frozen=True)
class TableContract:
    """The declared shape of one dbt model (or seed) as ClickHouse builds it."""

    name: str  # "<database>.<table>", e.g. "marts.dim_customers"
    unique_id: str  # the dbt node, e.g. "model.revisit.dim_customers"
    materialized: str  # table | view | incremental | seed
    columns: tuple[Column, ...]
    engine: str | None = None
    order_by: str | None = None

    @property
    def database(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def types(self) -> dict[str, str]:
        """Column name → ClickHouse type, in the declared order."""
        return {c.name: c.data_type for c in self.columns}

    def create_table_sql(
        self,
        table: str | None = None,
        *,
        engine: str | None = None,
        order_by: str | None = None,
        if_not_exists: bool = True,
    ) -> str:
        """`CREATE TABLE` with the declared columns, under `table` (default: its own name).

        The engine and sort key are the model's own where it configures them (see the
        module docstring), unless given here.
        """
        engine = engine or self.engine or FIXTURE_ENGINE
        order_by = order_by or self.order_by or FIXTURE_ORDER_BY
        columns = ",\n".join(f"    `{c.name}` {c.data_type}" for c in self.columns)
        exists = "IF NOT EXISTS " if if_not_exists else ""
        return (
            f"CREATE TABLE {exists}{table or self.name} (\n{columns}\n)\n"
            f"ENGINE = {engine}\nORDER BY {order_by}"
        )


def _order_by(value: Any) -> str | None:
    if not value:
        return None
    if isinstance(value, str):
        return value
    return "(" + ", ".join(value) + ")"


def _contract_of(node: Mapping[str, Any]) -> TableContract | None:
    """The node's contract, None for nodes that declare none; raises for a broken one."""
    config = node.get("config") or {}
    name = f"{node['schema']}.{node['alias'] or node['name']}"
    declared = node.get("columns") or {}
    if node["resource_type"] == "model":
        if not (config.get("contract") or {}).get("enforced"):
            return None
        untyped = [c for c, spec in declared.items() if not spec.get("data_type")]
        if not declared or untyped:
            raise ContractError(
                f"{name} ({node['original_file_path']}) enforces a contract but declares no "
                f"data_type for {untyped or 'any column'}"
            )
        columns = tuple(
            Column(c, spec["data_type"], spec.get("description") or "")
            for c, spec in declared.items()
        )
    elif node["resource_type"] == "seed":
        types = config.get("column_types") or {}
        if not types:
            return None
        columns = tuple(
            Column(c, t, (declared.get(c) or {}).get("description") or "") for c, t in types.items()
        )
    else:
        return None
    materialized = "seed" if node["resource_type"] == "seed" else config.get("materialized")
    table_like = materialized in ("table", "incremental")
    return TableContract(
        name=name,
        unique_id=node["unique_id"],
        materialized=str(materialized),
        columns=columns,
        engine=config.get("engine") if table_like else None,
        order_by=_order_by(config.get("order_by")) if table_like else None,
    )


class Contracts:
    """The contracted tables of one parsed dbt manifest."""

    def __init__(self, manifest: Mapping[str, Any]) -> None:
        self._tables: dict[str, TableContract] = {}
        self._by_id: dict[str, TableContract] = {}
        self._uncontracted: dict[str, str] = {}
        for node in manifest["nodes"].values():
            if node["resource_type"] not in ("model", "seed"):
                continue
            contract = _contract_of(node)
            if contract is None:
                self._uncontracted[f"{node['schema']}.{node['alias'] or node['name']}"] = node[
                    "original_file_path"
                ]
                continue
            self._tables[contract.name] = contract
            self._by_id[contract.unique_id] = contract
        self._exposures = {
            exposure["name"]: tuple(exposure["depends_on"]["nodes"])
            for exposure in manifest.get("exposures", {}).values()
        }

    @classmethod
    def from_file(cls, path: Path) -> Contracts:
        return cls(json.loads(Path(path).read_text()))

    def names(self) -> list[str]:
        """Every contracted table, `<database>.<table>`, sorted."""
        return sorted(self._tables)

    def table(self, name: str) -> TableContract:
        """The contract of `marts.dim_customers` (a bare model name works when unique)."""
        if name in self._tables:
            return self._tables[name]
        matches = [t for key, t in self._tables.items() if key.split(".", 1)[1] == name]
        if len(matches) == 1:
            return matches[0]
        if name in self._uncontracted or any(
            key.split(".", 1)[1] == name for key in self._uncontracted
        ):
            raise ContractError(
                f"{name} declares no contract: add `config: {{contract: {{enforced: true}}}}` "
                "and a data_type for every column to its YAML"
            )
        raise ContractError(f"{name}: no such dbt model or seed")

    def columns(self, name: str) -> list[tuple[str, str]]:
        """[(column, ClickHouse type)] of a contracted table, in the declared order."""
        return [(c.name, c.data_type) for c in self.table(name).columns]

    def create_table_sql(self, name: str, **options: Any) -> str:
        return self.table(name).create_table_sql(**options)

    def exposure_tables(self, exposure: str) -> list[str]:
        """The tables an exposure (dbt_project/models/exposures.yml) depends on."""
        if exposure not in self._exposures:
            raise ContractError(f"no exposure {exposure!r}; known: {sorted(self._exposures)}")
        missing = [n for n in self._exposures[exposure] if n not in self._by_id]
        if missing:
            raise ContractError(f"exposure {exposure!r} depends on uncontracted {missing}")
        return [self._by_id[n].name for n in self._exposures[exposure]]

    def create_tables(self, client: Any, names: Iterable[str]) -> None:
        """Create (empty, if missing) the named tables and their databases."""
        tables = [self.table(name) for name in names]
        for database in sorted({t.database for t in tables}):
            client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
        for table in tables:
            client.command(table.create_table_sql())


def parse_config() -> DbtConfig:
    """A DbtConfig for `dbt parse` alone: parsing never opens the warehouse it names."""
    scratch = Path(tempfile.gettempdir()) / "revisit-dbt-parse"
    return DbtConfig(warehouse_dsn=f"chdb://{scratch / 'warehouse'}", artifacts_dir=scratch)


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> Contracts:
    return Contracts.from_file(Path(path))


def load(config: DbtConfig | None = None) -> Contracts:
    """The contracts of the project's current manifest (parsed first when stale)."""
    manifest = ensure_manifest(config or parse_config())
    return _load(str(manifest), manifest.stat().st_mtime_ns)


def table(name: str, config: DbtConfig | None = None) -> TableContract:
    return load(config).table(name)


def columns(name: str, config: DbtConfig | None = None) -> list[tuple[str, str]]:
    return load(config).columns(name)


def create_table_sql(name: str, config: DbtConfig | None = None, **options: Any) -> str:
    return load(config).create_table_sql(name, **options)


def exposure_tables(exposure: str, config: DbtConfig | None = None) -> list[str]:
    return load(config).exposure_tables(exposure)


def create_tables(client: Any, names: Iterable[str], config: DbtConfig | None = None) -> None:
    """Create the named contracted tables (and their databases) in `client`'s warehouse."""
    load(config).create_tables(client, names)
