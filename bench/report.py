"""The shape of a benchmark figure, and the report `make bench` makes of them.

One run gives one report in three forms: the text table printed on the terminal,
a markdown table (`bench/results/latest.md`, also pasted into the README between
`<!-- bench:start -->` and `<!-- bench:end -->`) and JSON (`latest.json`), each
headed by the machine it ran on; `bench/chart.py` draws the ratios as SVG.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.machine import Machine

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


@dataclass(frozen=True)
class Goal:
    """A target read as bounds on the ratio; a bound is None when open."""

    low: float | None = None
    high: float | None = None
    strict: bool = False  # `<` or `>` rather than `<=` or `>=`

    def met(self, ratio: float) -> bool:
        if math.isnan(ratio):
            return False
        if self.low is not None and (ratio <= self.low if self.strict else ratio < self.low):
            return False
        return self.high is None or (ratio < self.high if self.strict else ratio <= self.high)


_BOUND = re.compile(r"(added\s+)?(>=|<=|>|<)\s*(\d+(?:\.\d+)?)")
_RANGE = re.compile(r"(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Figure:
    """One measured value next to the baseline it is judged against.

    `ratio` is value / baseline; `target` says in words what the ratio should be:
    "<= 1.2", ">= 0.3", "0.9-1.1", or "added <= 1" (value - baseline, in `unit`);
    a comment may follow. Any other text ("report") sets no goal.
    """

    suite: str
    name: str
    unit: str
    value: float
    baseline_name: str
    baseline: float
    target: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")

    @property
    def goal(self) -> Goal | None:
        if match := _RANGE.match(self.target):
            return Goal(low=float(match[1]), high=float(match[2]))
        match = _BOUND.match(self.target)
        if match is None:
            return None
        added, op, bound = match[1], match[2], float(match[3])
        if added:
            if not self.baseline:
                return None
            bound = (self.baseline + bound) / self.baseline
        strict = op in ("<", ">")
        return Goal(high=bound, strict=strict) if "<" in op else Goal(low=bound, strict=strict)

    @property
    def met(self) -> bool | None:
        """Whether the target is met; None when the target sets no goal."""
        goal = self.goal
        return None if goal is None else goal.met(self.ratio)


def percentile(samples: list[float], pct: float) -> float:
    """The `pct` percentile (0-100) of `samples` by the nearest-rank method."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(samples: list[float]) -> float:
    return statistics.median(samples)


# -- the report in its forms -----------------------------------------------------------

_HEADER = ("suite", "figure", "value", "baseline", "ratio", "target", "met")
_MET = {True: "yes", False: "NO", None: ""}


def _cells(f: Figure) -> tuple[str, ...]:
    return (
        f.suite,
        f.name,
        f"{f.value:,.3f} {f.unit}",
        f"{f.baseline:,.3f} {f.unit} ({f.baseline_name})",
        f"{f.ratio:.2f}x",
        f.target,
        _MET[f.met],
    )


def _heading(machine: Machine) -> list[str]:
    return [f"machine: {machine.summary()}", f"date: {machine.date}"]


def table(figures: list[Figure], machine: Machine) -> str:
    """The terminal table: aligned columns under the machine it ran on."""
    rows = [_HEADER, *(_cells(f) for f in figures)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join([*_heading(machine), *lines])


def markdown(figures: list[Figure], machine: Machine, chart: str | None = None) -> str:
    """A markdown table (and the chart at the relative path `chart`, if given)."""

    def row(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    lines = [f"{line}  " for line in _heading(machine)]
    if chart:
        lines += ["", f"![Each figure's ratio to its baseline, with its target]({chart})"]
    lines += ["", row(_HEADER), "|" + "---|" * 4 + "--:|---|:-:|"]
    lines += [row(_cells(f)) for f in figures]
    return "\n".join(lines) + "\n"


def to_json(figures: list[Figure], machine: Machine) -> str:
    payload = {
        "machine": machine.json(),
        "figures": [asdict(f) | {"ratio": _finite(f.ratio), "met": f.met} for f in figures],
    }
    return json.dumps(payload, indent=2) + "\n"


def from_json(text: str) -> tuple[list[Figure], Machine]:
    """Read back what `to_json` wrote."""
    payload = json.loads(text)
    fields = Figure.__dataclass_fields__
    figures = [Figure(**{k: v for k, v in f.items() if k in fields}) for f in payload["figures"]]
    return figures, Machine.from_json(payload["machine"])


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def replace_readme_block(readme: str, block: str) -> str:
    """`readme` with everything between the bench markers replaced by `block`."""
    start, end = readme.find(README_START), readme.find(README_END)
    if start < 0 or end < start or readme.count(README_START) != 1:
        raise ValueError(f"the README needs exactly one {README_START} ... {README_END} pair")
    head = readme[: start + len(README_START)]
    return f"{head}\n{block.strip()}\n{readme[end:]}"
