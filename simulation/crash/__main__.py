"""`python -m simulation.crash [--kills N] [--seed S] [--area A ...]`: run the random-kill
crash harness in a temporary directory and print a table per area, then the JSON summary
(last line). Exit 1 if any trial lost, duplicated or doubled anything, or left the
warehouse unreadable."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from simulation.crash.child import AREAS
from simulation.crash.harness import Trial, clean, run_harness


def _print_trial(area: str, trial: Trial) -> None:
    moments = ", ".join(
        f"kill at {a.kill_after_s:.2f}s in {a.phase}" if a.killed else f"rerun {a.seconds:.1f}s"
        for a in trial.attempts
    )
    verdict = "ok" if not trial.findings.details else "; ".join(trial.findings.details)
    print(f"{area:<10} trial {trial.number:>3}: {moments} → {verdict}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="kills per area")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--area", action="append", choices=AREAS, help="repeatable; default all")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="revisit-crash-") as tmp:
        result = run_harness(
            options.dir or Path(tmp), kills=options.kills, seed=options.seed,
            customers=options.customers, areas=tuple(options.area or AREAS),
            progress=_print_trial,
        )  # fmt: skip
    header = ("area", "kills", "reruns", "lost", "duplicated", "double effects",
              "documented resends", "warehouse opens", "reference s")  # fmt: skip
    print(" | ".join(header))
    for s in result["areas"]:
        print(" | ".join(str(s[k]) for k in ("area", "kills", "reruns", "lost", "duplicated",
              "double_effects", "documented_resends", "warehouse_ok", "reference_s")))  # fmt: skip
    print(json.dumps(result))
    return 0 if clean(result) else 1


if __name__ == "__main__":
    raise SystemExit(main())
