"""`python -m storewire_local.reliability`: one seeded run with faults; prints the table.

Exit status 0 when the oracle finds nothing wrong (nothing lost, no double effect, no
oversell, every dead letter explained), 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .runner import FaultPlan, RunConfig, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storewire_local.reliability")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--no-faults", action="store_true", help="duplicates and faults off")
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    args = parser.parse_args(argv)
    config = RunConfig(
        seed=args.seed,
        orders=args.orders,
        senders=args.senders,
        faults=FaultPlan.none() if args.no_faults else FaultPlan(),
    )
    report = run(config, out=args.out, log=lambda line: print(line, flush=True))
    print(report.table())
    for problem in report.refused[:20]:
        print(f"REFUSED  {problem}")
    for problem in report.mismatches[:50]:
        print(f"MISMATCH {problem}")
    for problem in report.oversell[:20]:
        print(f"OVERSELL {problem}")
    for letter in report.unexplained_dead_letters[:20]:
        print(f"DEAD LETTER (unexplained) {letter}")
    print("PASSED" if report.passed else "FAILED")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
