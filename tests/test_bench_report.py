"""The benchmark report in its forms (table, markdown, JSON, SVG, README block),
rendered from fixed figures; and `python -m bench` re-rendering a saved report."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

import bench.__main__ as bench_main
from bench import chart
from bench.machine import Machine, this_machine
from bench.report import (
    README_END,
    README_START,
    Figure,
    Goal,
    from_json,
    markdown,
    replace_readme_block,
    table,
    to_json,
)

MACHINE = Machine(
    cpu="Test CPU 9000 (x86_64)",
    cores=2,
    ram_gib=7.8,
    os="Debian GNU/Linux 12 (bookworm), kernel 6.1",
    python="3.11.7 (CPython)",
    postgresql="18.6",
    date="2026-11-23T05:00:00Z",
    load=0.42,
)
FIGURES = [
    Figure("issuer_http", "POST /token req/s", "req/s", 4000.0, "constant WSGI", 16000.0,
           ">= 0.5 (Node OIDC: ~7k req/s)"),
    Figure("minting", "KeyRing.jwks() cached", "calls/s", 9_000_000.0, "per call", 100_000.0,
           ">= 10"),
    Figure("accounts", "login, unknown user", "ms", 24.0, "wrong password", 24.5, "0.9-1.1"),
    Figure("proxy", "p50 latency | 1 client", "ms", 1.0, "direct psycopg", 0.25, "added <= 1 ms"),
    Figure("proxy", "gthread 2x4 <vs> 2x8 & more", "req/s", 1500.0, "gthread 2x8", 1500.0,
           "< 1 justifies the default"),
    Figure("rls", "per-user query", "ms", 0.2, "no RLS", 0.1, "<= 1.2"),
    Figure("rls", "informational", "ms", 0.3, "no RLS", 0.1, "report"),
]  # fmt: skip


def test_targets_are_read_as_bounds_on_the_ratio() -> None:
    goals = [f.goal for f in FIGURES]
    assert goals[0] == Goal(low=0.5)
    assert goals[1] == Goal(low=10.0)
    assert goals[2] == Goal(low=0.9, high=1.1)
    assert goals[3] == Goal(high=5.0)  # 0.25 ms + 1 ms is 5x the baseline
    assert goals[4] == Goal(high=1.0, strict=True)
    assert goals[5] == Goal(high=1.2)
    assert goals[6] is None
    assert [f.met for f in FIGURES] == [False, True, True, True, False, False, None]


def test_bounds_are_inclusive_unless_strict_and_nan_never_meets_one() -> None:
    assert Goal(high=1.0).met(1.0) and not Goal(high=1.0, strict=True).met(1.0)
    assert Goal(low=1.0).met(1.0) and not Goal(low=1.0, strict=True).met(1.0)
    no_baseline = Figure("s", "n", "ms", 1.0, "b", 0.0, "<= 2")
    assert no_baseline.met is False
    assert Figure("s", "n", "ms", 1.0, "b", 0.0, "added <= 1").goal is None


def test_table_is_headed_by_the_machine_and_aligned() -> None:
    lines = table(FIGURES, MACHINE).splitlines()
    assert lines[0] == (
        "machine: Test CPU 9000 (x86_64), 2 cores, 7.8 GiB RAM, "
        "Debian GNU/Linux 12 (bookworm), kernel 6.1, Python 3.11.7 (CPython), PostgreSQL 18.6, "
        "load 0.4 at start"
    )
    assert lines[1] == "date: 2026-11-23T05:00:00Z"
    header, rule, *rows = lines[2:]
    assert header.split(" | ")[0].strip() == "suite" and header.endswith("met")
    assert set(rule) <= {"-", "+"}
    assert len(rows) == len(FIGURES)
    first = [cell.strip() for cell in rows[0].split(" | ")]
    assert first == [
        "issuer_http", "POST /token req/s", "4,000.000 req/s",
        "16,000.000 req/s (constant WSGI)", "0.25x", ">= 0.5 (Node OIDC: ~7k req/s)", "NO",
    ]  # fmt: skip
    # Columns line up: every separator of the first data row sits under the header's.
    positions = [m.start() for m in re.finditer(r" \| ", header)]
    assert positions == [m.start() for m in re.finditer(r" \| ", rows[1])][: len(positions)]


def test_markdown_escapes_pipes_and_links_the_chart() -> None:
    text = markdown(FIGURES, MACHINE, chart="latest.svg")
    assert "![Each figure's ratio to its baseline, with its target](latest.svg)" in text
    assert "machine: Test CPU 9000" in text and "date: 2026-11-23T05:00:00Z" in text
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + len(FIGURES)
    # Seven columns in every row: an escaped pipe does not split a cell.
    assert {len(re.split(r"(?<!\\)\|", row)) - 2 for row in rows} == {7}
    assert "p50 latency \\| 1 client" in text
    assert "| yes |" in text and "| NO |" in text
    assert "latest.svg" not in markdown(FIGURES, MACHINE)


def test_json_round_trips_and_carries_machine_ratio_and_met() -> None:
    figures = [*FIGURES, Figure("s", "no baseline", "ms", 1.0, "b", 0.0, "<= 2")]
    text = to_json(figures, MACHINE)
    payload = json.loads(text)  # strict: no NaN
    assert payload["machine"] == {
        "cpu": "Test CPU 9000 (x86_64)", "cores": 2, "ram_gib": 7.8,
        "os": "Debian GNU/Linux 12 (bookworm), kernel 6.1", "python": "3.11.7 (CPython)",
        "postgresql": "18.6", "date": "2026-11-23T05:00:00Z", "load": 0.42,
    }  # fmt: skip
    assert payload["figures"][0]["ratio"] == 0.25 and payload["figures"][0]["met"] is False
    assert payload["figures"][-1]["ratio"] is None
    assert from_json(text) == (figures, MACHINE)


SVG = "{http://www.w3.org/2000/svg}"


def _rects(root: ET.Element, cls: str) -> list[ET.Element]:
    return [r for r in root.iter(f"{SVG}rect") if (r.get("class") or "").startswith(cls)]


def test_svg_is_well_formed_with_a_bar_and_a_target_zone_per_figure() -> None:
    root = ET.fromstring(chart.svg(FIGURES, MACHINE))
    bars = _rects(root, "bar")
    assert [b.get("class") for b in bars] == [chart.CLASSES[f.met] for f in FIGURES]
    assert [b.get("fill") for b in bars] == [chart.COLOURS[f.met] for f in FIGURES]
    assert len(_rects(root, "target")) == sum(f.goal is not None for f in FIGURES)
    one = chart._x(1.0)
    below, above = bars[0], bars[1]  # ratios 0.25 and 90: either side of the baseline
    assert float(below.get("x")) + float(below.get("width")) == pytest.approx(one, abs=0.2)
    assert float(below.get("x")) == pytest.approx(chart._x(0.25), abs=0.2)
    assert float(above.get("x")) == pytest.approx(one, abs=0.2)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "proxy · gthread 2x4 <vs> 2x8 & more" in texts  # escaped in the file, intact here
    assert "90.00x" in texts and "0.25x" in texts
    assert any(MACHINE.summary() in (t or "") for t in texts)


def test_svg_clips_ratios_beyond_the_axis() -> None:
    huge = Figure("s", "huge", "x", 1e6, "b", 1.0, ">= 10")
    root = ET.fromstring(chart.svg([huge], MACHINE))
    assert "1000000.00x (clipped)" in [t.text for t in root.iter(f"{SVG}text")]
    (bar,) = _rects(root, "bar")
    assert float(bar.get("x")) + float(bar.get("width")) == pytest.approx(chart.PLOT_RIGHT, abs=0.2)
    (zone,) = _rects(root, "target")
    assert float(zone.get("x")) == pytest.approx(chart._x(10), abs=0.2)


README = f"""# Project

Intro.

### Latest benchmark

Prose before.

{README_START}
old table
{README_END}

## After
"""


def test_readme_block_is_replaced_between_the_markers_only() -> None:
    new = replace_readme_block(README, "NEW TABLE\n")
    assert new == README.replace("old table", "NEW TABLE")
    assert replace_readme_block(new, "NEW TABLE\n") == new


@pytest.mark.parametrize(
    "readme",
    [
        "no markers",
        f"{README_END}\n{README_START}",
        f"{README_START}\n{README_START}\n{README_END}",
    ],
)
def test_readme_without_one_ordered_marker_pair_is_refused(readme: str) -> None:
    with pytest.raises(ValueError, match="bench:start"):
        replace_readme_block(readme, "x")


def test_the_repository_readme_has_the_markers() -> None:
    readme = bench_main.README.read_text()
    assert readme.count(README_START) == 1 and readme.count(README_END) == 1


def test_cli_renders_a_saved_report_and_rewrites_the_readme(tmp_path, monkeypatch, capsys) -> None:
    saved = tmp_path / "bench" / "results" / "latest.json"
    saved.parent.mkdir(parents=True)
    saved.write_text(to_json(FIGURES, MACHINE))
    readme = tmp_path / "README.md"
    readme.write_text(README)
    monkeypatch.setattr(bench_main, "README", readme)

    assert bench_main.main(["--from-json", str(saved), "--readme"]) == 0

    assert capsys.readouterr().out.strip() == table(FIGURES, MACHINE)
    assert saved.with_suffix(".md").read_text() == markdown(FIGURES, MACHINE, chart="latest.svg")
    ET.fromstring(saved.with_suffix(".svg").read_text())
    rewritten = readme.read_text()
    assert "](bench/results/latest.svg)" in rewritten and "old table" not in rewritten
    assert rewritten.startswith("# Project") and rewritten.endswith("## After\n")


@pytest.mark.parametrize(
    "argv",
    [["no-such-suite"], ["proxy", "--readme"], ["proxy", "--from-json", "x.json"],
     ["--from-json", "/nonexistent/latest.json"]],
)  # fmt: skip
def test_cli_refuses_bad_arguments_before_running_anything(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench_main.main(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_reports_from_before_the_load_was_recorded_still_read() -> None:
    payload = json.loads(to_json(FIGURES, MACHINE))
    del payload["machine"]["load"]
    figures, machine = from_json(json.dumps(payload))
    assert machine.load is None and "load" not in machine.summary() and figures == FIGURES


def test_this_machine_is_described() -> None:
    machine = this_machine()
    assert machine.cores >= 1 and machine.ram_gib > 0 and machine.load >= 0
    assert re.fullmatch(r"\d+(\.\d+)?", machine.postgresql), machine.postgresql
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", machine.date)
    assert machine.python.split()[0].count(".") == 2
