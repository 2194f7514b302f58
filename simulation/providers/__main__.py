"""`python -m simulation.providers [--providers whatsapp,telegram,sms,ledger] [--port 8791]
[--faults JSON]` (faults: `{provider or "*": {Faults field: value}}`, default from the
environment variable REVISIT_STANDIN_FAULTS; none when neither is set)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from simulation.providers import PROVIDERS, serve_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Provider stand-ins on 127.0.0.1")
    parser.add_argument("--providers", default=",".join(PROVIDERS))
    parser.add_argument("--jsonl-dir", type=Path, default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="first port (0 = ephemeral)")
    parser.add_argument(
        "--faults", type=json.loads, default=os.environ.get("REVISIT_STANDIN_FAULTS") or None,
        help='initial faults, e.g. {"ledger": {"seed": 1, "rates": {"timeout": 0.1}}}',
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.jsonl_dir:
        args.jsonl_dir.mkdir(parents=True, exist_ok=True)
    serve_forever(args.providers.split(","), args.jsonl_dir, args.host, args.port, args.faults)


if __name__ == "__main__":
    main()
