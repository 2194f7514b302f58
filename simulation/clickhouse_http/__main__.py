"""`python -m simulation.clickhouse_http --path DIR`: the test stand-in for
clickhouse-server (see the package doc). Prints `LISTENING <port>`; SIGTERM stops it."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from simulation.clickhouse_http.server import StandinServer, serve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--path", type=Path, required=True, help="chDB data directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: an ephemeral port")
    parser.add_argument("--user", default="default")
    parser.add_argument("--log", type=Path, help="append one line per request here")
    args = parser.parse_args()
    # The password comes from the environment, not argv (visible in `ps`).
    password = os.environ.get("CLICKHOUSE_STANDIN_PASSWORD", "")
    log = args.log.open("a") if args.log else None
    servers: list[StandinServer] = []

    def ready(server: StandinServer) -> None:
        servers.append(server)
        print(f"LISTENING {server.server_address[1]}", flush=True)

    def stop(signum: int, frame: Any) -> None:
        # shutdown() waits for serve_forever to return: call it off the serving thread.
        if servers:
            threading.Thread(target=servers[0].shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        serve(args.path, args.host, args.port, user=args.user, password=password, log=log,
              on_ready=ready)  # fmt: skip
    finally:
        if log:
            log.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
