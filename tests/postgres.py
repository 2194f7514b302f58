"""A throwaway PostgreSQL cluster on 127.0.0.1 for the state-store tests.

The machine's PostgreSQL binaries (`/usr/lib/postgresql/<major>/bin`, installed by
`scripts/system-packages`) create a cluster in a temporary directory; initdb refuses to
run as root, so as root the cluster belongs to the `postgres` user the Debian package
creates. Authentication is `trust` and the server listens on 127.0.0.1 only, on a free
port, so each xdist worker runs its own cluster. Each test gets a fresh database.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresCluster:
    """A running cluster: `dsn(db)` is a SQLAlchemy URL of one of its databases."""

    port: int
    data_dir: Path

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its DSN."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        engine = create_engine(self.dsn(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.dsn(name)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """Start a PostgreSQL cluster for this test process; stopped (and deleted) at the end."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.fail("PostgreSQL binaries not found under /usr/lib/postgresql: run `make test`")
    base = Path(tempfile.mkdtemp(prefix="revisit-pg-"))
    data_dir = base / "data"
    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses root: the cluster (and the directory it lives in) is postgres's.
        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run(
        [*run_as, str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres",
         "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
    subprocess.run(
        [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-o", options,
         "-l", str(base / "server.log"), "-w", "start"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    try:
        yield PostgresCluster(port=port, data_dir=data_dir)
    finally:
        subprocess.run(
            [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_dsn(postgres_cluster: PostgresCluster) -> str:
    """DSN of the session cluster's `postgres` database (create per-test ones from it)."""
    return postgres_cluster.dsn()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty state store: a SQLite file, or a new database on the session cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'state.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database()
