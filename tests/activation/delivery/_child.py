"""Child process for the kill -9 and two-worker tests: one delivery run against given
stand-ins. An optional fourth argument is a directory used as a start barrier: the child
writes `ready-<pid>` there, then waits for `go`, so workers start claiming together."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from activation.delivery import deliver
from activation.outbox import Outbox
from activation.providers import ProvidersConfig
from simulation.providers import delivered_lookup


def main() -> None:
    dsn, config_json, urls_json = sys.argv[1:4]
    config = ProvidersConfig.model_validate_json(config_json)
    outbox = Outbox(dsn)
    if len(sys.argv) > 4:
        barrier = Path(sys.argv[4])
        (barrier / f"ready-{os.getpid()}").touch()
        deadline = time.monotonic() + 60
        while not (barrier / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.005)
    report = deliver(outbox, config, already_delivered=delivered_lookup(json.loads(urls_json)))
    print(json.dumps(report.as_dict(), default=str))


if __name__ == "__main__":
    main()
