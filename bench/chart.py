"""The report as a small SVG chart: each figure's ratio to its baseline, log scale.

Hand-written SVG (a few rect, line and text elements) rather than a plotting
library: the picture is simple, and the benchmark needs no heavy dependency. A
bar runs from 1 (the baseline) to the ratio, green when the target is met, red
when it is missed, grey when the target sets no goal; the shaded zone is where
the target would be met. Ratios beyond the axis are clipped at its end.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

from bench.machine import Machine
from bench.report import Figure

LOW, HIGH = 0.01, 100.0  # the axis: two decades either side of the baseline
WIDTH, LABELS, PLOT_LEFT, PLOT_RIGHT = 960, 12, 440, 900
TOP, ROW, BAR = 78, 20, 12
COLOURS = {True: "#2e7d32", False: "#c62828", None: "#9e9e9e"}
CLASSES = {True: "bar met", False: "bar missed", None: "bar no-goal"}
ZONE = "#2e7d32"


def _x(ratio: float) -> float:
    clipped = min(max(ratio, LOW), HIGH)
    share = (math.log10(clipped) - math.log10(LOW)) / (math.log10(HIGH) - math.log10(LOW))
    return PLOT_LEFT + share * (PLOT_RIGHT - PLOT_LEFT)


def _text(
    x: float, y: float, text: str, anchor: str = "start", size: int = 11, **attrs: str
) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>'
        f"{escape(text)}</text>"
    )


def _label(figure: Figure, limit: int = 68) -> str:
    label = f"{figure.suite} · {figure.name}"
    return label if len(label) <= limit else label[: limit - 1] + "…"


def svg(figures: list[Figure], machine: Machine) -> str:
    height = TOP + ROW * len(figures) + 44
    bottom = TOP + ROW * len(figures)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">',
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        _text(LABELS, 20, "make bench: each figure's ratio to its baseline (log scale)", size=14,
              font_weight="bold"),
        _text(LABELS, 38, f"{machine.summary()} · {machine.date}", size=10, fill="#555555"),
    ]  # fmt: skip
    for tick in (0.01, 0.1, 1, 10, 100):
        x = _x(tick)
        width = 1.5 if tick == 1 else 0.5
        parts.append(
            f'<line x1="{x:.1f}" y1="{TOP - 8}" x2="{x:.1f}" y2="{bottom}" '
            f'stroke="#888888" stroke-width="{width}"/>'
        )
        parts.append(_text(x, TOP - 12, f"{tick:g}x", anchor="middle", size=10))
    for i, figure in enumerate(figures):
        parts.extend(_row(figure, TOP + i * ROW))
    parts.append(_legend(bottom + 26))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _row(figure: Figure, y: float) -> list[str]:
    middle = y + ROW / 2
    parts = [_text(LABELS, middle + 4, _label(figure))]
    goal = figure.goal
    if goal is not None:
        left = _x(goal.low) if goal.low is not None else PLOT_LEFT
        right = _x(goal.high) if goal.high is not None else PLOT_RIGHT
        parts.append(
            f'<rect class="target" x="{left:.1f}" y="{y + 2:.1f}" '
            f'width="{max(right - left, 1):.1f}" height="{ROW - 4}" fill="{ZONE}" '
            'fill-opacity="0.12"/>'
        )
        for bound in (goal.low, goal.high):
            if bound is not None:
                parts.append(
                    f'<line x1="{_x(bound):.1f}" y1="{y + 2:.1f}" x2="{_x(bound):.1f}" '
                    f'y2="{y + ROW - 2:.1f}" stroke="#1b5e20" stroke-width="2"/>'
                )
    ratio = figure.ratio
    if math.isfinite(ratio) and ratio > 0:
        start, end = sorted((_x(1.0), _x(ratio)))
        parts.append(
            f'<rect class="{CLASSES[figure.met]}" x="{start:.1f}" y="{middle - BAR / 2:.1f}" '
            f'width="{max(end - start, 1):.1f}" height="{BAR}" fill="{COLOURS[figure.met]}"/>'
        )
        clipped = "" if LOW <= ratio <= HIGH else " (clipped)"
        after = ratio >= 1
        parts.append(
            _text(
                (end + 4) if after else (start - 4),
                middle + 4,
                f"{ratio:.2f}x{clipped}",
                anchor="start" if after else "end",
                size=10,
            )
        )
    return parts


def _legend(y: float) -> str:
    items = [("target met", COLOURS[True], 1.0), ("target missed", COLOURS[False], 1.0),
             ("no numeric target", COLOURS[None], 1.0), ("where the target is met", ZONE, 0.12)]  # fmt: skip
    parts, x = [], LABELS
    for label, colour, opacity in items:
        parts.append(
            f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{colour}" '
            f'fill-opacity="{opacity}"/>'
        )
        parts.append(_text(x + 16, y, label, size=10))
        x += 30 + 7 * len(label)
    return "\n".join(parts)
