"""`python -m mutants [NAME-SUBSTRING ...]`: run the known security mutants, print the score."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mutants.catalog import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 900


def scratch_copy() -> Path:
    """The working tree as git sees it (tracked and new files, nothing ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    target = Path(tempfile.mkdtemp(prefix="neon-own-login-mutants-"))
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def run(mutant: Mutant, tree: Path) -> str:
    """ "killed", "survived", or why the mutant could not be judged."""
    path = tree / mutant.path
    original = path.read_text()
    if original.count(mutant.old) != 1:
        return "does not apply (the checked text moved or changed)"
    path.write_text(original.replace(mutant.old, mutant.new))
    try:
        result = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *mutant.tests],
            cwd=tree,
            env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return "killed (timeout)"
    finally:
        path.write_text(original)
    if result.returncode == 1:
        return "killed"
    if result.returncode == 0:
        return "survived"
    return f"error (pytest exit {result.returncode})"


def main(filters: list[str]) -> int:
    chosen = [m for m in MUTANTS if not filters or any(f in m.name for f in filters)]
    tree = scratch_copy()
    started = time.monotonic()
    outcomes: list[tuple[Mutant, str]] = []
    try:
        for mutant in chosen:
            outcome = run(mutant, tree)
            outcomes.append((mutant, outcome))
            print(f"{outcome:<10} {mutant.name}  ({mutant.path})", flush=True)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    killed = sum(outcome.startswith("killed") for _, outcome in outcomes)
    minutes = (time.monotonic() - started) / 60
    print(f"\n{killed} of {len(outcomes)} security mutants killed in {minutes:.1f} min")
    return 0 if killed == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
