"""`python -m simulation.providers [--providers whatsapp,telegram,sms,ledger] [--port 8791]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from simulation.providers import PROVIDERS, serve_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Provider stand-ins on 127.0.0.1")
    parser.add_argument("--providers", default=",".join(PROVIDERS))
    parser.add_argument("--jsonl-dir", type=Path, default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="first port (0 = ephemeral)")
    args = parser.parse_args(argv)
    if args.jsonl_dir:
        args.jsonl_dir.mkdir(parents=True, exist_ok=True)
    serve_forever(args.providers.split(","), args.jsonl_dir, args.host, args.port)


if __name__ == "__main__":
    main()
