"""The shape of a benchmark figure and the table `make bench` prints."""

from __future__ import annotations

import json
import os
import platform
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    """One measured value next to the baseline it is judged against.

    `ratio` is value / baseline; `target` says in words what the ratio should be
    (for example "<= 1.2" or ">= 0.3").
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


def percentile(samples: list[float], pct: float) -> float:
    """The `pct` percentile (0-100) of `samples` by the nearest-rank method."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def table(figures: list[Figure]) -> str:
    header = ("suite", "figure", "value", "baseline", "ratio", "target")
    rows = [
        (
            f.suite,
            f.name,
            f"{f.value:,.3f} {f.unit}",
            f"{f.baseline:,.3f} {f.unit} ({f.baseline_name})",
            f"{f.ratio:.2f}x",
            f.target,
        )
        for f in figures
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(figures: list[Figure], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": machine(),
        "figures": [asdict(f) | {"ratio": f.ratio} for f in figures],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
