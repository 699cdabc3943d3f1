"""`make bench`: run every benchmark suite and print one table.

A suite is a module in `bench/` with a `run() -> list[Figure]` function, listed
in SUITES. Pass suite names to run only those: `python -m bench proxy rls`.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from bench.report import Figure, machine, table, write_json

SUITES: list[str] = ["issuer_http", "accounts", "minting", "proxy", "rls", "app"]


def main(argv: list[str]) -> int:
    chosen = argv or SUITES
    unknown = sorted(set(chosen) - set(SUITES))
    if unknown:
        print(
            f"unknown suite(s): {', '.join(unknown)}; known: {', '.join(SUITES)}", file=sys.stderr
        )
        return 2
    figures: list[Figure] = []
    for name in chosen:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        figures.extend(importlib.import_module(f"bench.{name}").run())
    print(f"machine: {machine()}")
    print(table(figures))
    write_json(figures, Path("bench/results/latest.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
