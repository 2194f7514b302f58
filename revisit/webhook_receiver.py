"""``python -m revisit.webhook_receiver [--host H] [--port P] [--workers N]``.

The webhook receiver as a bare process, configured from the settings, for the demo and
the benchmark: prints ``LISTENING <port>`` once the socket listens (port 0 → ephemeral).
`revisit webhooks serve` is the same receiver for people.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ingestion.messenger.receiver import serve
from revisit.settings import SettingsError, get_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}

    def ready(port: int) -> None:
        print(f"LISTENING {port}", flush=True)

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        settings = get_settings()
        config = settings.receiver(**overrides)
        # Off loopback, anyone can sign with the published development secrets: refuse.
        settings.refuse_dev_secrets(webhook_host=config.host)
    except SettingsError as ex:
        print(f"error: {ex}", file=sys.stderr)
        raise SystemExit(2) from None
    serve(config, workers=args.workers, on_ready=ready)


if __name__ == "__main__":
    main()
