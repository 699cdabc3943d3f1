"""The key ring in the database (ISSUER_KEYS_STORE=database): issuers in separate
working directories, sharing nothing but the database, serve one JWKS; a rotation
through one reaches the other within a second; racing rotations leave one active
key; a process killed in the middle of a rotation leaves the ring as it was; the
file ring of the previous release moves in with every kid; the master key can be
rotated. On SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Engine, select, text, update

from issuer.config import Config
from issuer.keys import KeyRing, KeyRingError, RotationTooEarly
from issuer.keys.database_store import key_ring_private_keys, key_ring_table
from issuer.tokens import sign_jwt
from tests.resilience.services import wait_for
from tests.support.jose import verify_with_jwks

MASTER = "master secret of the fleet, the same on every issuer"
NEW_MASTER = "the new master secret of the fleet, from now on"


@pytest.fixture
def fleet(
    make_issuer_app: Callable[..., Flask], backend_config: Config, tmp_path: Path
) -> Callable[..., Flask]:
    """Issuers on the database ring, each in its own directory (no shared files)."""
    count = 0

    def issuer(**changes: object) -> Flask:
        nonlocal count
        count += 1
        home = tmp_path / f"host-{count}"
        settings = {"keys_store": "database", "keys_master_key": MASTER, **changes}
        return make_issuer_app(keys_dir=home / "keys", data_dir=home / "data", **settings)

    return issuer


def jwks(app: Flask) -> dict:
    return json.loads(app.test_client().get("/.well-known/jwks.json").data)


def test_two_issuers_share_one_ring_and_see_a_rotation_within_a_second(fleet) -> None:
    one, two = fleet(), fleet()
    run(one, "keys", "init")
    assert jwks(one) == jwks(two)
    token = sign_jwt(one.extensions["keyring"], {"sub": "s", "exp": int(time.time()) + 60})
    verify_with_jwks(token, json.dumps(jwks(two)).encode())
    old_active = one.extensions["keyring"].manifest().active.kid
    two.extensions["keyring"].rotate(min_published=0, force=True)
    time.sleep(1.1)
    assert one.extensions["keyring"].signing_key().kid != old_active
    assert jwks(one) == jwks(two)
    # Nothing of the ring is on either host's disk.
    for app in (one, two):
        assert not app.config["ISSUER"].keys_dir.exists()


def test_racing_rotations_leave_one_active_key(fleet) -> None:
    apps = [fleet() for _ in range(4)]
    run(apps[0], "keys", "init")
    rings = [app.extensions["keyring"] for app in apps]
    # The next key is published long enough for one rotation; the one it publishes
    # is not: each issuer re-reads under the lock, so only the first may rotate.
    min_published = 1
    time.sleep(1.1)
    start = threading.Barrier(len(rings))
    outcomes: list[str] = []

    def rotate(ring: KeyRing) -> None:
        start.wait()
        try:
            ring.rotate(min_published=min_published)
            outcomes.append("rotated")
        except RotationTooEarly:
            outcomes.append("too early")
        except KeyRingError as error:
            outcomes.append(type(error).__name__)

    threads = [threading.Thread(target=rotate, args=(ring,)) for ring in rings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    manifest = rings[0].manifest()
    assert sum(1 for key in manifest.keys if key.state == "active") == 1
    assert sorted(outcomes) == ["rotated", "too early", "too early", "too early"], outcomes
    assert manifest.generation == 2


def test_the_file_ring_moves_in_with_every_kid(
    make_issuer_app: Callable[..., Flask], keys_dir: Path
) -> None:
    files = KeyRing(keys_dir)
    files.init()
    files.rotate(min_published=0, force=True)
    before = files.manifest()
    app = make_issuer_app(keys_store="database", keys_master_key=MASTER)
    after = app.extensions["keyring"].manifest()
    assert [k.kid for k in after.keys] == [k.kid for k in before.keys]
    assert after.active.kid == before.active.kid
    token = sign_jwt(app.extensions["keyring"], {"sub": "s", "exp": int(time.time()) + 60})
    assert token.count(".") == 2
    assert (keys_dir / "manifest.json").exists(), "the files stay as a backup"
    # Sealed in the database: no PEM, and no master key, can be read there.
    with app.extensions["db"].connect() as conn:
        sealed = list(conn.execute(select(key_ring_private_keys.c.sealed)).scalars())
    assert sealed and not any("PRIVATE KEY" in s or MASTER in s for s in sealed)
    # A second start imports nothing again.
    again = make_issuer_app(keys_store="database", keys_master_key=MASTER)
    assert again.extensions["keyring"].manifest().generation == after.generation


def test_the_master_key_rotates_through_the_fallbacks(fleet) -> None:
    old = fleet()
    run(old, "keys", "init")
    kid = old.extensions["keyring"].signing_key().kid
    moved = fleet(keys_master_key=NEW_MASTER, keys_master_key_fallbacks=(MASTER,))
    assert moved.extensions["keyring"].signing_key().kid == kid, "opened with the fallback"
    assert run(moved, "keys", "reseal").exit_code == 0
    new_only = fleet(keys_master_key=NEW_MASTER)
    assert new_only.extensions["keyring"].signing_key().kid == kid
    wrong = fleet(keys_master_key="a wrong master secret, long enough to be taken")
    with pytest.raises(KeyRingError, match="under a master key not configured here"):
        wrong.extensions["keyring"].signing_key()


@pytest.mark.parametrize("secret", [None, "", "short-and-guessable"])
def test_the_database_ring_needs_a_random_master_key(
    backend_config: Config, secret: str | None
) -> None:
    with pytest.raises(ValueError, match="ISSUER_KEYS_MASTER_KEY of at least 32"):
        dataclasses.replace(backend_config, keys_store="database", keys_master_key=secret).check()


def test_a_key_written_into_the_database_by_hand_is_not_published(fleet) -> None:
    """Whoever can write to the database but lacks the master key cannot publish a key
    of their own: the manifest's HMAC fails, and the issuer keeps its last good ring."""
    serving = fleet()
    run(serving, "keys", "init")
    published = jwks(serving)
    ring = serving.extensions["keyring"]
    manifest = json.loads(ring.manifest().dumps())
    forged = dict(manifest["keys"][0], kid="attacker-kid", state="retired", retired_at=1)
    manifest["keys"].append(forged)
    with serving.extensions["db"].begin() as conn:
        conn.execute(
            update(key_ring_table).values(
                manifest=json.dumps(manifest), version=key_ring_table.c.version + 1
            )
        )
    time.sleep(1.1)
    assert jwks(serving) == published, "the running issuer keeps its last good ring"
    with pytest.raises(KeyRingError, match="integrity check"):
        fleet().extensions["keyring"].signing_key()


def test_a_process_killed_inside_a_rotation_leaves_the_ring_as_it_was(
    fleet, backend_config: Config, tmp_path: Path
) -> None:
    app = fleet()
    run(app, "keys", "init")
    before = app.extensions["keyring"].manifest()
    script = """
import os, sys, time
from issuer import create_app
from issuer.config import Config
from issuer.keys.database_store import DatabaseKeyStore
real = DatabaseKeyStore.write_manifest
def stall(self, raw):
    real(self, raw)
    print("inside", flush=True)
    time.sleep(60)  # killed here: keys and manifest written, not committed
DatabaseKeyStore.write_manifest = stall
config = Config(keys_store="database", keys_master_key=sys.argv[1], database_url=sys.argv[2],
                keys_dir=__import__("pathlib").Path(sys.argv[3]), data_dir=__import__("pathlib").Path(sys.argv[3]))
create_app(config).extensions["keyring"].rotate(min_published=0, force=True)
"""
    process = subprocess.Popen(
        [sys.executable, "-c", script, MASTER, backend_config.database_url, str(tmp_path / "k")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "inside"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    after = fleet().extensions["keyring"]
    assert after.manifest() == before
    assert after.signing_key().kid == before.active.kid
    # And the ring goes on: the next rotation works.
    after.rotate(min_published=0, force=True)


def run(app: Flask, *args: str):
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result


#: Changes are pushed by PostgreSQL only (SQLite: the version check above).
on_postgresql = pytest.mark.parametrize("backend_config", ["postgresql"], indirect=True)


def wait_for_active(ring: KeyRing, kid: str, within: float) -> float:
    """Seconds until `ring` signs with `kid`; fails after `within`."""
    start = time.monotonic()
    while ring.signing_key().kid != kid:
        assert time.monotonic() - start < within, f"still signing with {ring.signing_key().kid}"
        time.sleep(0.02)
    return time.monotonic() - start


@on_postgresql
def test_on_postgresql_a_rotation_is_pushed_to_the_other_issuer_at_commit(fleet) -> None:
    one, two = fleet(), fleet()
    run(one, "keys", "init")
    ring = one.extensions["keyring"]
    ring.refresh_interval = 3600.0  # it would never look again by itself
    ring.signing_key()  # listening from now on
    time.sleep(0.5)
    for _ in range(3):
        _, after = two.extensions["keyring"].rotate(min_published=0, force=True)
        assert wait_for_active(ring, after.active.kid, within=1.0) < 1.0


def _listeners(engine: Engine) -> list[int]:
    """Backends listening for the key ring's changes in the test's database."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE query = 'LISTEN issuer_key_ring' AND datname = current_database()"
                )
            ).scalars()
        )


@on_postgresql
def test_when_the_notifications_connection_drops_the_ring_catches_up(fleet) -> None:
    one, two = fleet(), fleet()
    engine = one.extensions["db"]
    # Rings the previous test closed stop listening within a second (when their
    # wait for notifications ends), not at once.
    closing = set(_listeners(engine))
    run(one, "keys", "init")
    ring = one.extensions["keyring"]
    ring.refresh_interval = 3600.0
    ring.signing_key()

    def only_ours() -> bool:  # this process's ring alone
        listening = set(_listeners(engine))
        return len(listening) == 1 and not listening & closing

    wait_for(only_ours, 3.0, step=0.1)
    with engine.begin() as conn:
        killed = [
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
            for pid in _listeners(engine)
        ]
    assert killed == [True]
    _, after = two.extensions["keyring"].rotate(min_published=0, force=True)
    # Missed while nobody listened: seen on reconnecting, a second later.
    wait_for_active(ring, after.active.kid, within=3.0)
    time.sleep(0.5)
    _, after = two.extensions["keyring"].rotate(min_published=0, force=True)
    assert wait_for_active(ring, after.active.kid, within=1.0) < 1.0  # pushed again
