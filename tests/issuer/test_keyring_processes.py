"""The ring under real concurrency and real crashes: separate processes, SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from issuer.keys import KeyRing, KeyState

REPO = Path(__file__).resolve().parents[2]

# Waits for a start signal, then rotates without --force, once, at a fixed time
# (argv[3]) by which the current next key has been published long enough.
RACER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from issuer.keys import KeyRing, RotationTooEarly
    keys, go = Path(sys.argv[1]), Path(sys.argv[2])
    ring = KeyRing(keys, clock=lambda: int(sys.argv[3]))
    while not go.exists():
        time.sleep(0.001)
    try:
        ring.rotate(min_published=3900)
    except RotationTooEarly:
        sys.exit(3)
    """
)

# Mutates the ring as fast as it can until killed; its clock runs 1000 s per call
# so that prunes have work to do.
CHURNER = textwrap.dedent(
    """
    import itertools, sys
    from issuer.keys import KeyRing
    ticks = itertools.count(1_800_000_000, 1000)
    ring = KeyRing(sys.argv[1], clock=lambda: next(ticks))
    print("ready", flush=True)
    for n in itertools.count():
        retired, _ = ring.rotate(min_published=3900, force=True)
        if n % 3 == 0:
            ring.revoke(retired.kid)
        if n % 4 == 0:
            ring.prune(max_token_lifetime=900, leeway=30)
    """
)


def python(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", *args], cwd=REPO, **kwargs)


def assert_consistent(keys_dir: Path) -> KeyRing:
    """Loadable by a fresh process's view, one active, one next, their key files present."""
    ring = KeyRing(keys_dir)
    manifest = ring.manifest()
    assert ring.signing_key().kid == manifest.active.kid
    assert [k.state for k in manifest.keys].count(KeyState.ACTIVE) == 1
    assert [k.state for k in manifest.keys].count(KeyState.NEXT) == 1
    published = {k.kid for k in manifest.keys if k.published}
    assert set(ring.jwks().kids) == published
    for kid in manifest.signing_kids():
        assert (keys_dir / f"{kid}.key").is_file()
    return ring


def test_two_processes_racing_to_rotate_rotate_once(ring: KeyRing, keys_dir: Path) -> None:
    before = ring.manifest()
    go = keys_dir.parent / "go"
    later = str(before.next.published_at + 3900)
    racers = [python(RACER, str(keys_dir), str(go), later) for _ in range(2)]
    time.sleep(1.0)  # both imported and polling
    go.touch()
    codes = sorted(p.wait(timeout=60) for p in racers)
    assert codes == [0, 3]
    after = assert_consistent(keys_dir).manifest()
    assert after.generation == before.generation + 1
    assert after.active.kid == before.next.kid
    assert [k.kid for k in after.keys if k.state is KeyState.RETIRED] == [before.active.kid]


def test_forced_rotations_from_two_processes_serialise(ring: KeyRing, keys_dir: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from issuer.keys import KeyRing
        ring = KeyRing(sys.argv[1])
        for _ in range(10):
            ring.rotate(min_published=3900, force=True)
        """
    )
    before = ring.manifest()
    workers = [python(script, str(keys_dir)) for _ in range(2)]
    assert [p.wait(timeout=60) for p in workers] == [0, 0]
    after = assert_consistent(keys_dir).manifest()
    assert after.generation == before.generation + 20
    assert sum(k.state is KeyState.RETIRED for k in after.keys) == 20


def test_sigkill_at_random_moments_leaves_a_consistent_ring(ring: KeyRing, keys_dir: Path) -> None:
    rng = random.Random(7)
    generations = [ring.manifest().generation]
    for _ in range(12):
        churner = python(CHURNER, str(keys_dir), stdout=subprocess.PIPE, text=True)
        try:
            assert churner.stdout.readline() == "ready\n"
            time.sleep(rng.uniform(0.0, 0.25))
        finally:
            os.kill(churner.pid, signal.SIGKILL)
            churner.wait(timeout=10)
            churner.stdout.close()
        assert churner.returncode == -signal.SIGKILL  # it was killed mid-loop, not finished
        generations.append(assert_consistent(keys_dir).manifest().generation)
    assert generations[-1] > generations[0] + 12  # the kills did land amid real work
    # Whatever the crashes left behind is cleaned up by the next mutation.
    survivor = KeyRing(keys_dir)
    survivor.rotate(min_published=3900, force=True)
    names = {p.name for p in keys_dir.iterdir()}
    manifest = survivor.manifest()
    assert names == {"manifest.json", ".lock"} | {f"{k}.key" for k in manifest.signing_kids()}
