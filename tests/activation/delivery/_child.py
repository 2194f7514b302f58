"""Child process for the kill -9 test: one delivery run against given stand-ins."""

from __future__ import annotations

import json
import sys

from activation.delivery import deliver
from activation.outbox import Outbox
from activation.providers import ProvidersConfig
from simulation.providers import delivered_lookup


def main() -> None:
    dsn, config_json, urls_json = sys.argv[1:4]
    config = ProvidersConfig.model_validate_json(config_json)
    report = deliver(Outbox(dsn), config, already_delivered=delivered_lookup(json.loads(urls_json)))
    print(json.dumps(report.as_dict(), default=str))


if __name__ == "__main__":
    main()
