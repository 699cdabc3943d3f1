"""The key ring's lifecycle, invariants and on-disk format, on an injected clock."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from pathlib import Path

import pytest
from joserfc.jwk import ECKey

from issuer.keys import (
    KeyFileError,
    KeyRing,
    KeyState,
    ManifestError,
    PassphraseError,
    RingExists,
    RingNotFound,
    RotationTooEarly,
    StorageError,
    UnknownKey,
)
from issuer.keys.jwk import public_jwk, thumbprint

MIN_PUBLISHED = 3900
TTL, LEEWAY = 900, 30


def states(ring: KeyRing) -> dict[str, KeyState]:
    return {k.kid: k.state for k in ring.manifest().keys}


def jwks_kids(ring: KeyRing) -> list[str]:
    return [k["kid"] for k in json.loads(ring.jwks().body)["keys"]]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.name != ".lock"}


def test_init_creates_active_and_published_next(ring: KeyRing) -> None:
    manifest = ring.manifest()
    assert ring.signing_key().kid == manifest.active.kid
    assert jwks_kids(ring) == [manifest.active.kid, manifest.next.kid]


def test_init_refuses_an_existing_ring(ring: KeyRing, keys_dir: Path) -> None:
    before = snapshot(keys_dir)
    with pytest.raises(RingExists):
        ring.init()
    assert snapshot(keys_dir) == before


def test_kid_is_the_rfc7638_thumbprint(ring: KeyRing) -> None:
    """Checked against an independent implementation (joserfc)."""
    key = ring.signing_key()
    jwk = public_jwk(key.private_key.public_key())
    assert key.kid == thumbprint(jwk) == ECKey.import_key(jwk).thumbprint()


def test_rotation_too_early_is_refused_and_changes_nothing(
    ring: KeyRing, keys_dir: Path, clock
) -> None:
    before = snapshot(keys_dir)
    clock.advance(MIN_PUBLISHED - 1)
    with pytest.raises(RotationTooEarly, match="--force"):
        ring.rotate(min_published=MIN_PUBLISHED)
    assert snapshot(keys_dir) == before


def test_rotation_promotes_next_retires_active_and_publishes_a_new_next(
    ring: KeyRing, clock
) -> None:
    old = ring.manifest()
    clock.advance(MIN_PUBLISHED)
    retired, after = ring.rotate(min_published=MIN_PUBLISHED)
    assert retired.kid == old.active.kid and retired.state is KeyState.RETIRED
    assert after.active.kid == old.next.kid
    assert after.next.kid not in (old.active.kid, old.next.kid)
    assert ring.signing_key().kid == old.next.kid
    assert jwks_kids(ring) == [after.active.kid, after.next.kid, old.active.kid]
    assert after.generation == old.generation + 1


def test_forced_rotation_ignores_the_publication_delay(ring: KeyRing) -> None:
    old = ring.manifest()
    _, after = ring.rotate(min_published=MIN_PUBLISHED, force=True)
    assert after.active.kid == old.next.kid


def test_retired_private_keys_are_deleted_from_disk(ring: KeyRing, keys_dir: Path) -> None:
    retired, after = ring.rotate(min_published=MIN_PUBLISHED, force=True)
    files = {p.name for p in keys_dir.glob("*.key")}
    assert files == {f"{after.active.kid}.key", f"{after.next.kid}.key"}
    assert retired.kid in jwks_kids(ring)


def test_prune_waits_for_the_last_token_of_a_retired_key(ring: KeyRing, clock) -> None:
    retired, _ = ring.rotate(min_published=MIN_PUBLISHED, force=True)
    clock.advance(TTL + LEEWAY - 1)
    assert ring.prune(max_token_lifetime=TTL, leeway=LEEWAY) == []
    assert retired.kid in jwks_kids(ring)
    clock.advance(1)
    assert ring.prune(max_token_lifetime=TTL, leeway=LEEWAY) == [retired.kid]
    assert retired.kid not in jwks_kids(ring)
    assert retired.kid not in states(ring)


def test_prune_never_touches_active_or_next(ring: KeyRing, clock) -> None:
    clock.advance(10 * 365 * 86400)
    assert ring.prune(max_token_lifetime=TTL, leeway=LEEWAY) == []
    assert len(jwks_kids(ring)) == 2


def test_revoke_retired_key_unpublishes_it_at_once(ring: KeyRing) -> None:
    retired, after = ring.rotate(min_published=MIN_PUBLISHED, force=True)
    etag = ring.jwks().etag
    revoked = ring.revoke(retired.kid)
    assert retired.kid not in jwks_kids(ring)
    assert ring.jwks().etag != etag
    assert revoked.active.kid == after.active.kid and revoked.next.kid == after.next.kid
    assert states(ring)[retired.kid] is KeyState.REVOKED


def test_revoke_active_promotes_next_and_creates_a_new_next(ring: KeyRing, keys_dir: Path) -> None:
    old = ring.manifest()
    after = ring.revoke(old.active.kid)
    assert after.active.kid == old.next.kid
    assert after.next.kid not in (old.active.kid, old.next.kid)
    assert ring.signing_key().kid == old.next.kid
    assert old.active.kid not in jwks_kids(ring)
    assert not (keys_dir / f"{old.active.kid}.key").exists()


def test_revoke_next_creates_a_new_next_that_must_wait_again(ring: KeyRing, clock) -> None:
    old = ring.manifest()
    clock.advance(MIN_PUBLISHED)
    after = ring.revoke(old.next.kid)
    assert after.active.kid == old.active.kid
    assert old.next.kid not in jwks_kids(ring)
    with pytest.raises(RotationTooEarly):
        ring.rotate(min_published=MIN_PUBLISHED)


def test_revoked_keys_are_dropped_by_prune(ring: KeyRing) -> None:
    kid = ring.manifest().next.kid
    ring.revoke(kid)
    assert ring.prune(max_token_lifetime=TTL, leeway=LEEWAY) == [kid]


@pytest.mark.parametrize("kid", ["nope", "A" * 43, "../manifest", ""])
def test_revoke_unknown_kid_is_refused_and_changes_nothing(
    ring: KeyRing, keys_dir: Path, kid: str
) -> None:
    before = snapshot(keys_dir)
    with pytest.raises(UnknownKey):
        ring.revoke(kid)
    assert snapshot(keys_dir) == before


def test_revoking_twice_is_refused(ring: KeyRing) -> None:
    kid = ring.manifest().next.kid
    ring.revoke(kid)
    with pytest.raises(UnknownKey, match="already revoked"):
        ring.revoke(kid)


def test_files_are_private(ring: KeyRing, keys_dir: Path) -> None:
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    for path in keys_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_manifest_holds_no_private_material(ring: KeyRing, keys_dir: Path) -> None:
    manifest = json.loads((keys_dir / "manifest.json").read_text())
    for key in manifest["keys"]:
        assert set(key["jwk"]) == {"crv", "kty", "x", "y"}


def test_a_second_instance_sees_a_rotation_without_restart(ring: KeyRing, keys_dir: Path) -> None:
    """Another process's KeyRing (a gunicorn worker) follows changes by stat-ing the manifest."""
    worker = KeyRing(keys_dir, refresh_interval=0)
    first = worker.signing_key().kid
    assert worker.signing_key() is worker.signing_key()  # cached between changes
    _, after = ring.rotate(min_published=MIN_PUBLISHED, force=True)
    assert worker.signing_key().kid == after.active.kid != first
    assert worker.jwks() == ring.jwks()


def test_other_processes_changes_show_within_the_refresh_interval(
    ring: KeyRing, keys_dir: Path
) -> None:
    worker = KeyRing(keys_dir, refresh_interval=0.3)
    first = worker.signing_key().kid
    _, after = ring.rotate(min_published=MIN_PUBLISHED, force=True)
    assert worker.signing_key().kid == first  # not re-checked yet: one stat per interval
    time.sleep(0.35)
    assert worker.signing_key().kid == after.active.kid


def test_a_forked_worker_looks_for_itself_rather_than_trusting_its_parents_freshness(
    ring: KeyRing, keys_dir: Path
) -> None:
    """A server forks its workers from a parent that may have used the ring: the
    child's first call checks the manifest, though the parent would not for an hour."""
    parent = KeyRing(keys_dir, refresh_interval=3600)
    first = parent.signing_key().kid
    _, after = ring.rotate(min_published=MIN_PUBLISHED, force=True)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (runs in the child)
        os.close(read)
        os.write(write, parent.signing_key().kid.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        seen_by_child = pipe.read().decode()
    assert os.waitpid(child, 0)[1] == 0
    assert seen_by_child == after.active.kid != first
    assert parent.signing_key().kid == first  # the parent still trusts its hour


def test_own_changes_show_at_once(ring: KeyRing) -> None:
    assert ring.refresh_interval > 0
    kid = ring.signing_key().kid
    ring.revoke(kid)
    assert ring.signing_key().kid != kid and kid not in ring.jwks().kids


def test_missing_ring_is_a_precise_error(tmp_path: Path) -> None:
    with pytest.raises(RingNotFound, match="keys init"):
        KeyRing(tmp_path / "nowhere").signing_key()


def test_mutations_on_a_missing_ring_are_refused(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "nowhere")
    with pytest.raises(RingNotFound):
        ring.rotate(min_published=MIN_PUBLISHED, force=True)
    with pytest.raises(RingNotFound):
        ring.revoke("x")
    with pytest.raises(RingNotFound):
        ring.prune(max_token_lifetime=TTL, leeway=LEEWAY)
    assert not (tmp_path / "nowhere").exists()


def test_unwritable_keys_directory_is_a_precise_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StorageError, match="cannot"):
        KeyRing(tmp_path / "file" / "keys").init()


def _edit_manifest(keys_dir: Path, edit) -> None:
    path = keys_dir / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _set_state(index: int, state: str):
    def edit(data: dict) -> None:
        data["keys"][index]["state"] = state

    return edit


def _swap_x(data: dict) -> None:
    data["keys"][0]["jwk"]["x"], data["keys"][1]["jwk"]["x"] = (
        data["keys"][1]["jwk"]["x"],
        data["keys"][0]["jwk"]["x"],
    )


def _swap_jwks(data: dict) -> None:
    """Two valid public keys, each under the other's kid: only the thumbprint check notices."""
    first, second = data["keys"][0], data["keys"][1]
    first["jwk"], second["jwk"] = second["jwk"], first["jwk"]


CORRUPTIONS = {
    "two active keys": (_set_state(1, "active"), "exactly one active"),
    "no next key": (_set_state(1, "revoked"), "exactly one next"),
    "active without activation time": (
        lambda d: d["keys"][0].update(activated_at=None),
        "lacks activated_at",
    ),
    "unknown state": (_set_state(0, "spare"), "unknown state"),
    "kid does not match key": (_swap_x, "invalid public key|thumbprint"),
    "keys swapped between kids": (_swap_jwks, "does not match its public key's thumbprint"),
    "kid path traversal": (lambda d: d["keys"][0].update(kid="../../etc/passwd"), "no valid kid"),
    "private member": (lambda d: d["keys"][0]["jwk"].update(d="AAAA"), "exactly crv, kty, x, y"),
    "bad timestamp": (lambda d: d["keys"][0].update(created_at="yesterday"), "invalid created_at"),
    "wrong version": (lambda d: d.update(version=2), "version 1"),
    "keys not a list": (lambda d: d.update(keys={}), "'keys' list"),
    "duplicate key": (lambda d: d["keys"].append(d["keys"][0]), "share a kid"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_hand_edited_manifest_is_a_precise_error(keys_dir: Path, clock, case: str) -> None:
    KeyRing(keys_dir, clock=clock).init()
    edit, message = CORRUPTIONS[case]
    _edit_manifest(keys_dir, edit)
    before = snapshot(keys_dir)
    ring = KeyRing(keys_dir, clock=clock)
    with pytest.raises(ManifestError, match=message):
        ring.signing_key()
    with pytest.raises(ManifestError):
        ring.rotate(min_published=MIN_PUBLISHED, force=True)
    assert snapshot(keys_dir) == before


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b"[]", b"null", b'{"version": 1}'])
def test_unparseable_manifest_is_a_precise_error(ring: KeyRing, keys_dir: Path, raw) -> None:
    (keys_dir / "manifest.json").write_bytes(raw)
    with pytest.raises(ManifestError):
        KeyRing(keys_dir).jwks()


def test_missing_active_key_file_is_a_precise_error(ring: KeyRing, keys_dir: Path) -> None:
    (keys_dir / f"{ring.manifest().active.kid}.key").unlink()
    with pytest.raises(KeyFileError, match="missing"):
        KeyRing(keys_dir).signing_key()


def test_missing_next_key_file_is_a_precise_error(ring: KeyRing, keys_dir: Path) -> None:
    (keys_dir / f"{ring.manifest().next.kid}.key").unlink()
    with pytest.raises(KeyFileError, match="missing"):
        KeyRing(keys_dir).signing_key()


def test_corrupt_key_file_refuses_rotation_and_changes_nothing(
    ring: KeyRing, keys_dir: Path
) -> None:
    key_file = keys_dir / f"{ring.manifest().next.kid}.key"
    key_file.write_bytes(key_file.read_bytes()[:40])  # truncated mid-write
    before = snapshot(keys_dir)
    with pytest.raises(KeyFileError, match="not a valid PEM"):
        ring.rotate(min_published=MIN_PUBLISHED, force=True)
    assert snapshot(keys_dir) == before


def test_key_file_holding_another_key_is_detected(ring: KeyRing, keys_dir: Path) -> None:
    manifest = ring.manifest()
    active, following = (keys_dir / f"{k.kid}.key" for k in (manifest.active, manifest.next))
    active.write_bytes(following.read_bytes())
    with pytest.raises(KeyFileError, match="different key"):
        KeyRing(keys_dir).signing_key()


def test_running_ring_survives_a_broken_edit(ring: KeyRing, keys_dir: Path, caplog) -> None:
    """A worker keeps signing with the last good ring rather than failing every request,
    logs the problem once, and picks up the ring again once it is repaired."""
    worker = KeyRing(keys_dir, refresh_interval=0)
    kid = worker.signing_key().kid
    good = (keys_dir / "manifest.json").read_bytes()
    (keys_dir / "manifest.json").write_text("{ oops")
    with caplog.at_level(logging.ERROR, logger="issuer.keys.ring"):
        assert worker.signing_key().kid == kid
        assert worker.signing_key().kid == kid
    assert len([r for r in caplog.records if "reload failed" in r.message]) == 1
    (keys_dir / "manifest.json").write_bytes(good)
    _, after = ring.rotate(min_published=MIN_PUBLISHED, force=True)
    assert worker.signing_key().kid == after.active.kid


def test_orphans_from_a_crash_are_ignored_then_cleaned(ring: KeyRing, keys_dir: Path) -> None:
    (keys_dir / ".tmp-leftover").write_bytes(b"partial")
    orphan = keys_dir / ("B" * 43 + ".key")
    orphan.write_bytes(b"not even a key")
    assert KeyRing(keys_dir).signing_key().kid == ring.manifest().active.kid
    ring.rotate(min_published=MIN_PUBLISHED, force=True)
    assert not orphan.exists() and not (keys_dir / ".tmp-leftover").exists()


def test_mutations_are_audited(ring: KeyRing, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="issuer.audit"):
        retired, after = ring.rotate(min_published=MIN_PUBLISHED, force=True)
        ring.revoke(retired.kid)
    events = [json.loads(r.message) for r in caplog.records if r.name == "issuer.audit"]
    assert [e["event"] for e in events] == ["keys.rotate", "keys.revoke"]
    assert events[0]["retired"] == retired.kid and events[0]["active"] == after.active.kid
    assert events[0]["forced"] is True
    assert events[1]["kid"] == retired.kid and events[1]["was"] == "retired"


class TestPassphrase:
    """Encryption at rest: scrypt + AES-GCM, bound to the kid."""

    def test_keys_are_encrypted_and_usable(self, keys_dir: Path) -> None:
        ring = KeyRing(keys_dir, passphrase="correct horse")
        ring.init()
        for path in keys_dir.glob("*.key"):
            assert b"PRIVATE KEY" not in path.read_bytes()
        assert KeyRing(keys_dir, passphrase="correct horse").signing_key().kid == (
            ring.manifest().active.kid
        )

    def test_wrong_missing_or_unexpected_passphrase(self, keys_dir: Path, tmp_path: Path) -> None:
        KeyRing(keys_dir, passphrase="correct horse").init()
        before = snapshot(keys_dir)
        with pytest.raises(PassphraseError, match="wrong"):
            KeyRing(keys_dir, passphrase="battery staple").signing_key()
        with pytest.raises(PassphraseError, match="encrypted"):
            KeyRing(keys_dir).signing_key()
        with pytest.raises(PassphraseError, match="wrong"):
            KeyRing(keys_dir, passphrase="battery staple").rotate(
                min_published=MIN_PUBLISHED, force=True
            )
        assert snapshot(keys_dir) == before
        plain = tmp_path / "plain"
        KeyRing(plain).init()
        with pytest.raises(PassphraseError, match="not encrypted"):
            KeyRing(plain, passphrase="x").signing_key()

    def test_encrypted_file_cannot_be_swapped_for_another_kid(self, keys_dir: Path) -> None:
        ring = KeyRing(keys_dir, passphrase="pw")
        ring.init()
        manifest = ring.manifest()
        active, following = (keys_dir / f"{k.kid}.key" for k in (manifest.active, manifest.next))
        active.write_bytes(following.read_bytes())
        with pytest.raises(PassphraseError):
            KeyRing(keys_dir, passphrase="pw").signing_key()


def test_the_static_jwks_follows_every_change_atomically(tmp_path: Path, clock) -> None:
    """ISSUER_JWKS_STATIC_DIR: a copy of the published set for a static host, rewritten
    on init, rotate, revoke and prune, and by any issuer that finds it lost."""
    static = tmp_path / "public"
    ring = KeyRing(tmp_path / "keys", clock=clock, static_jwks_dir=static)
    copy = static / "jwks.json"
    ring.init()
    assert copy.read_bytes() == ring.jwks().body
    assert stat.S_IMODE(copy.stat().st_mode) == 0o644
    clock.advance(MIN_PUBLISHED + 1)
    ring.rotate(min_published=MIN_PUBLISHED)
    assert copy.read_bytes() == ring.jwks().body
    ring.revoke(ring.manifest().next.kid)
    assert copy.read_bytes() == ring.jwks().body
    clock.advance(10_000)
    assert ring.prune(max_token_lifetime=900, leeway=30)
    assert copy.read_bytes() == ring.jwks().body
    assert [p.name for p in static.iterdir()] == ["jwks.json"], "no temp file left behind"

    copy.unlink()
    published = KeyRing(tmp_path / "keys", clock=clock, static_jwks_dir=static).jwks().body
    assert copy.read_bytes() == published
