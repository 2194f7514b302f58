"""dbt adapter plugin `chdb`: dbt-clickhouse running on the embedded ClickHouse engine.

Everything but the connection is dbt-clickhouse's: the plugin declares
`dependencies=["clickhouse"]`, so dbt resolves every `clickhouse__` macro and
materialization for it. Profiles use `type: chdb` and `path: <data directory>`.
"""

from dbt.adapters.base import AdapterPlugin
from dbt.adapters.chdb.connections import ChdbConnectionManager, ChdbCredentials
from dbt.adapters.chdb.impl import ChdbAdapter
from dbt.include import chdb as _include

__all__ = ["ChdbAdapter", "ChdbConnectionManager", "ChdbCredentials", "Plugin"]

Plugin = AdapterPlugin(
    adapter=ChdbAdapter,
    credentials=ChdbCredentials,
    include_path=_include.PACKAGE_PATH,
    dependencies=["clickhouse"],
)
