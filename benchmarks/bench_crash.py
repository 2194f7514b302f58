"""Random-kill crash harness at full size: SIGKILL ingestion, dbt and activation at
`--kills` seeded random moments each, rerun to completion, count what was lost,
duplicated or applied twice (`simulation.crash`). Prints one JSON line: per area the
kills, reruns, lost, duplicated, double effects, documented resends and the reference
run's seconds, plus the harness's wall time.

    .venv/bin/python -m benchmarks.bench_crash --kills 20 --seed 17
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from simulation.crash.child import AREAS
from simulation.crash.harness import clean, run_harness

FIGURES = ("kills", "reruns", "lost", "duplicated", "double_effects", "documented_resends",
           "redelivered", "warehouse_ok", "not_landed", "reference_s")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="kills per area")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--area", action="append", choices=AREAS, help="repeatable; default all")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-crash-") as tmp:
        result = run_harness(
            Path(tmp), kills=args.kills, seed=args.seed, customers=args.customers,
            areas=tuple(args.area or AREAS),
            progress=lambda area, trial: print(area, trial.number, trial.findings.details,
                                               file=sys.stderr, flush=True),
        )  # fmt: skip
    out: dict[str, object] = {
        "bench": "crash", "seed": args.seed, "customers": args.customers,
        "clean": clean(result), "harness_s": result["wall_s"],
    }  # fmt: skip
    for area in result["areas"]:
        for figure in FIGURES:
            out[f"{area['area']}_{figure}"] = area[figure]
        out[f"{area['area']}_kills_by_phase"] = area["kills_by_phase"]
        if area["problems"]:
            out[f"{area['area']}_problems"] = area["problems"][:3]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
