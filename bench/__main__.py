"""`make bench`: run every benchmark suite and report them as one table.

A suite is a module in `bench/` with a `run() -> list[Figure]` function, listed
in SUITES. The report goes to the terminal and to `bench/results/latest.json`,
`latest.md` and `latest.svg` (committed: the README links them).

    python -m bench                    every suite
    python -m bench proxy rls          only these (written to bench/results/subset.*)
    python -m bench --readme           every suite, then the README's table too
    python -m bench --from-json bench/results/latest.json --readme
                                       no run: render an earlier report again
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from bench import chart
from bench.machine import this_machine
from bench.report import (
    Figure,
    from_json,
    markdown,
    replace_readme_block,
    table,
    to_json,
    write,
)

RESULTS = Path(__file__).resolve().parent / "results"
README = RESULTS.parent.parent / "README.md"

SUITES: list[str] = ["issuer_http", "accounts", "minting", "fleet", "proxy", "rls", "app"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"one of {', '.join(SUITES)}")
    parser.add_argument(
        "--readme", action="store_true", help="rewrite the README's table (full runs only)"
    )
    parser.add_argument(
        "--from-json", type=Path, metavar="PATH", help="render this earlier report, run nothing"
    )
    return parser


def run(suites: list[str]) -> list[Figure]:
    figures: list[Figure] = []
    for name in suites:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        figures.extend(importlib.import_module(f"bench.{name}").run())
    return figures


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    unknown = sorted(set(args.suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(unknown)}; known: {', '.join(SUITES)}")
    if args.from_json and args.suites:
        parser.error("--from-json renders an earlier report: name no suites")
    if args.readme and args.suites and set(args.suites) != set(SUITES):
        parser.error("--readme needs a run of every suite: the README shows the whole report")

    if args.from_json:
        try:
            figures, machine = from_json(args.from_json.read_text())
        except (OSError, ValueError, KeyError, TypeError) as error:
            parser.error(f"cannot read {args.from_json}: {error}")
        report = args.from_json
    else:
        machine = this_machine()
        figures = run(args.suites or SUITES)
        partial = bool(args.suites) and set(args.suites) != set(SUITES)
        report = RESULTS / ("subset.json" if partial else "latest.json")
        write(report, to_json(figures, machine))

    image = report.with_suffix(".svg")
    write(image, chart.svg(figures, machine))
    write(report.with_suffix(".md"), markdown(figures, machine, chart=image.name))
    print(table(figures, machine))
    print(f"\nreport: {report}, {report.with_suffix('.md')}, {image}", file=sys.stderr)
    if args.readme:
        if not image.resolve().is_relative_to(README.parent):
            parser.error(f"--readme links the chart, which must be in this repository: {image}")
        link = image.resolve().relative_to(README.parent).as_posix()
        block = markdown(figures, machine, chart=link)
        README.write_text(replace_readme_block(README.read_text(), block))
        print(f"README.md: benchmark table rewritten from {report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
