"""A STAND-IN for clickhouse-server, for tests only: ClickHouse's HTTP interface served
from the embedded engine (chDB) on 127.0.0.1.

No modern clickhouse-server installs on this machine, yet `REVISIT_WAREHOUSE_DSN=http://…`
and the dbt `server` target are code paths of their own: clickhouse-connect's HTTP
client, the server branch of `warehouse.load` and dbt-clickhouse's own adapter. This
package lets the tests run those paths over real sockets against the same engine the
embedded path uses. It is not part of the product and nothing in the production packages
imports it: run a real ClickHouse server in production (see the README).

One process serves one data directory (chDB allows one per process); requests run in
threads, each on a chDB session of its own (or the session named by `session_id`).

    python -m simulation.clickhouse_http --path DIR [--port 0] [--log FILE]

prints `LISTENING <port>` once it accepts requests and stops on SIGTERM/SIGINT.
`running(path)` does the same from Python (a child process, stopped on exit).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from simulation.clickhouse_http.server import Engine, serve

__all__ = ["Engine", "running", "serve"]


@contextmanager
def running(
    path: Path, *, log: Path | None = None, user: str = "default", password: str = ""
) -> Iterator[str]:
    """The stand-in on `path` in a child process; yields its base URL (http://127.0.0.1:PORT).

    A child process, not a thread: the caller may open other data directories itself.
    """
    command = [sys.executable, "-m", "simulation.clickhouse_http", "--path", str(path),
               "--user", user]  # fmt: skip
    if log is not None:
        command += ["--log", str(log)]
    env = {**os.environ, "CLICKHOUSE_STANDIN_PASSWORD": password}
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = child.stdout.readline() if child.stdout else ""
        if not line.startswith("LISTENING "):
            raise RuntimeError(f"the ClickHouse HTTP stand-in did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
