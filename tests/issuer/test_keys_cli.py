"""`python -m issuer keys …` and `token mint`: output, refusals, and the ring left intact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask

from issuer import create_app
from issuer.keys import KeyRing, KeyState

REPO = Path(__file__).resolve().parents[2]


def run(app: Flask, *args: str, input: str | None = None) -> Result:
    return app.test_cli_runner().invoke(args=list(args), input=input)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.name != ".lock"}


def test_init_refuses_an_existing_ring(keys_app: Flask, keys_dir: Path) -> None:
    before = snapshot(keys_dir)
    result = run(keys_app, "keys", "init")
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert snapshot(keys_dir) == before


def test_init_on_an_empty_directory(issuer_config, keys_dir: Path) -> None:
    result = run(create_app(issuer_config), "keys", "init")
    assert result.exit_code == 0, result.output
    manifest = KeyRing(keys_dir).manifest()
    assert f"active {manifest.active.kid}" in result.output
    assert f"next   {manifest.next.kid}" in result.output


def test_list_shows_states_and_when_rotation_is_safe(keys_app: Flask, ring: KeyRing) -> None:
    manifest = ring.manifest()
    result = run(keys_app, "keys", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "KID",
        "STATE",
        "CREATED",
        "ACTIVATED",
        "RETIRED",
        "REVOKED",
        "NOTE",
    ]
    assert any(manifest.active.kid in line and " active " in line for line in lines)
    next_line = next(line for line in lines if manifest.next.kid in line)
    assert "rotation safe from 2027-01-15T09:05:00Z" in next_line  # T0 + 3900 s


def test_list_json(keys_app: Flask, ring: KeyRing, clock) -> None:
    ring.rotate(min_published=3900, force=True)
    result = run(keys_app, "keys", "list", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    by_state = {k["state"]: k for k in data["keys"]}
    assert set(by_state) == {"active", "next", "retired"}
    assert by_state["retired"]["prunable_at"] == clock() + 900 + 30
    assert by_state["next"]["rotation_safe_at"] == clock() + 3900
    assert "jwk" not in by_state["active"] and '"d"' not in result.output


def test_rotate_too_early_is_refused(keys_app: Flask, ring: KeyRing, keys_dir: Path, clock) -> None:
    clock.advance(3899)
    before = snapshot(keys_dir)
    result = run(keys_app, "keys", "rotate")
    assert result.exit_code == 1
    assert "--force" in result.output and "Traceback" not in result.output
    assert snapshot(keys_dir) == before


def test_rotate_when_safe(keys_app: Flask, ring: KeyRing, clock) -> None:
    old = ring.manifest()
    clock.advance(3900)
    result = run(keys_app, "keys", "rotate")
    assert result.exit_code == 0, result.output
    assert f"retired {old.active.kid}" in result.output
    assert f"active  {old.next.kid}" in result.output
    assert ring.signing_key().kid == old.next.kid
    assert "warning" not in result.stderr


def test_forced_rotation_warns(keys_app: Flask, ring: KeyRing, clock) -> None:
    clock.advance(900)
    result = run(keys_app, "keys", "rotate", "--force")
    assert result.exit_code == 0, result.output
    assert "signs 3000 s before every JWKS cache" in result.stderr


def test_rotate_refuses_a_publication_delay_shorter_than_jwks_caches(
    keys_app: Flask, ring: KeyRing, keys_dir: Path, clock
) -> None:
    keys_app.config["ISSUER"].rotation_min_published = 3600
    clock.advance(10_000)
    before = snapshot(keys_dir)
    result = run(keys_app, "keys", "rotate", "--force")
    assert result.exit_code == 1
    assert "ISSUER_ROTATION_MIN_PUBLISHED" in result.output
    assert snapshot(keys_dir) == before


def test_rotate_refuses_a_publication_delay_shorter_than_our_max_age(
    keys_app: Flask, ring: KeyRing
) -> None:
    keys_app.config["ISSUER"].jwks_max_age = 7200
    result = run(keys_app, "keys", "rotate", "--force")
    assert result.exit_code == 1
    assert "7200 s" in result.output


def test_prune(keys_app: Flask, ring: KeyRing, clock) -> None:
    retired, _ = ring.rotate(min_published=3900, force=True)
    result = run(keys_app, "keys", "prune")
    assert result.exit_code == 0 and "nothing to prune" in result.output
    clock.advance(930)
    result = run(keys_app, "keys", "prune")
    assert result.exit_code == 0 and f"pruned {retired.kid}" in result.output


def test_revoke_asks_for_confirmation_and_explains_the_consequences(
    keys_app: Flask, ring: KeyRing, keys_dir: Path
) -> None:
    manifest = ring.manifest()
    before = snapshot(keys_dir)
    result = run(keys_app, "keys", "revoke", manifest.active.kid, input="n\n")
    assert result.exit_code == 1
    assert "ACTIVE key" in result.output and manifest.next.kid in result.output
    assert snapshot(keys_dir) == before
    result = run(keys_app, "keys", "revoke", manifest.active.kid, input="y\n")
    assert result.exit_code == 0, result.output
    assert ring.signing_key().kid == manifest.next.kid
    assert manifest.active.kid not in ring.jwks().kids


def test_revoke_yes_skips_the_question(keys_app: Flask, ring: KeyRing) -> None:
    kid = ring.manifest().next.kid
    result = run(keys_app, "keys", "revoke", "--yes", kid)
    assert result.exit_code == 0, result.output
    assert {k.kid: k.state for k in ring.manifest().keys}[kid] is KeyState.REVOKED


@pytest.mark.parametrize("kid", ["unknown", "../../etc/passwd", "A" * 43, "-Dq" + "A" * 40])
def test_revoke_unknown_kid(keys_app: Flask, ring: KeyRing, keys_dir: Path, kid: str) -> None:
    before = snapshot(keys_dir)
    result = run(keys_app, "keys", "revoke", "--yes", kid)
    assert result.exit_code == 1
    assert "no key with kid" in result.output
    assert snapshot(keys_dir) == before


def test_revoke_takes_the_kid_after_a_double_dash(keys_app: Flask, ring: KeyRing) -> None:
    kid = ring.manifest().next.kid
    result = run(keys_app, "keys", "revoke", "--yes", "--", kid)
    assert result.exit_code == 0, result.output
    assert {k.kid: k.state for k in ring.manifest().keys}[kid] is KeyState.REVOKED


def test_revoke_twice(keys_app: Flask, ring: KeyRing) -> None:
    kid = ring.manifest().next.kid
    run(keys_app, "keys", "revoke", "--yes", kid)
    result = run(keys_app, "keys", "revoke", "--yes", kid)
    assert result.exit_code == 1 and "already revoked" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "revoke"], "Missing argument 'KID'"),
        (["keys", "rotate", "--bogus"], "No such option"),
        (["keys", "frobnicate"], "No such command"),
        (["token", "mint"], "Missing option '--sub'"),
        (["token", "mint", "--sub", "u", "--ttl", "0"], "--ttl"),
        (["token", "mint", "--sub", "u", "--ttl", "abc"], "--ttl"),
        (["token", "mint", "--sub", "u", "--ttl", "901"], "ISSUER_ACCESS_TOKEN_TTL"),
        (["token", "mint", "--sub", "u", "--claim", "novalue"], "NAME=VALUE"),
        (["token", "mint", "--sub", "u", "--claim", "=x"], "NAME=VALUE"),
    ],
)
def test_bad_arguments_exit_2(keys_app: Flask, args: list[str], message: str) -> None:
    result = run(keys_app, *args)
    assert result.exit_code == 2
    assert message in result.output


def test_mint_prints_a_verifiable_token(keys_app: Flask, ring: KeyRing, verify, clock) -> None:
    result = run(
        keys_app,
        "token", "mint", "--sub", "alice", "--ttl", "60", "--aud", "neon", "--scope", "todos",
        "--claim", "team=admin", "--claim", "level=3", "--claim", "tags=[\"a\"]",
        "--claim", "weight=NaN",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    token = verify(result.stdout.strip(), ring.jwks().body)
    assert token.claims["sub"] == "alice" and token.claims["aud"] == "neon"
    assert token.claims["exp"] == clock() + 60
    assert (token.claims["team"], token.claims["level"], token.claims["tags"]) == (
        "admin",
        3,
        ["a"],
    )
    assert token.claims["scope"] == "todos"
    assert token.claims["weight"] == "NaN"  # not a JSON number: kept as a string


def test_mint_defaults_to_a_database_token(keys_app: Flask, ring: KeyRing, verify) -> None:
    """An operator's debugging token is for the database unless `--aud` says otherwise."""
    config = keys_app.config["ISSUER"]
    result = run(keys_app, "token", "mint", "--sub", "alice")
    assert result.exit_code == 0, result.output
    token = verify(result.stdout.strip(), ring.jwks().body)
    assert token.claims["aud"] == config.database_audience == "urn:neon:database"
    other = run(keys_app, "token", "mint", "--sub", "alice", "--aud", "https://api.example")
    assert verify(other.stdout.strip(), ring.jwks().body).claims["aud"] == "https://api.example"


def test_mint_refuses_to_override_registered_claims(keys_app: Flask) -> None:
    """Parsed as `users add --claim` parses it: a usage error, nothing printed to stdout."""
    result = run(keys_app, "token", "mint", "--sub", "alice", "--claim", "sub=root")
    assert result.exit_code == 2
    assert "'sub' is set by the issuer itself" in result.output
    twice = run(keys_app, "token", "mint", "--sub", "a", "--claim", "x=1", "--claim", "x=2")
    assert twice.exit_code == 2 and "given twice" in twice.output


def test_commands_on_a_corrupt_manifest_fail_cleanly(keys_app: Flask, keys_dir: Path) -> None:
    (keys_dir / "manifest.json").write_text('{"version": 1, "generation": 3, "keys": [1]}')
    before = snapshot(keys_dir)
    for args in (["keys", "list"], ["keys", "rotate", "--force"], ["keys", "prune"],
                 ["keys", "revoke", "--yes", "x"], ["token", "mint", "--sub", "u"]):  # fmt: skip
        result = run(keys_app, *args)
        assert result.exit_code == 1, args
        assert "key #1 is not an object" in result.output, args
    assert snapshot(keys_dir) == before


def _cli(keys_dir: Path, *args: str, passphrase: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "ISSUER_KEYS_DIR": str(keys_dir)}
    env.pop("ISSUER_KEYS_PASSPHRASE", None)
    if passphrase:
        env["ISSUER_KEYS_PASSPHRASE"] = passphrase
    env["ISSUER_DATABASE_URL"] = f"sqlite:///{keys_dir.parent / 'cli.sqlite3'}"
    env["ISSUER_DATA_DIR"] = str(keys_dir.parent / "data")
    return subprocess.run(
        [sys.executable, "-m", "issuer", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_entry_point_help_and_errors(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    for group in (["keys"], ["token", "mint"], ["keys", "revoke"]):
        result = _cli(keys_dir, *group, "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout
    result = _cli(keys_dir, "keys", "list")
    assert result.returncode == 1
    assert "keys init" in result.stderr and "Traceback" not in result.stderr


def test_entry_point_with_a_wrong_passphrase(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    assert _cli(keys_dir, "keys", "init", passphrase="right").returncode == 0
    before = snapshot(keys_dir)
    result = _cli(keys_dir, "keys", "rotate", "--force", passphrase="wrong")
    assert result.returncode == 1
    assert "wrong ISSUER_KEYS_PASSPHRASE" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(keys_dir) == before
    result = _cli(keys_dir, "token", "mint", "--sub", "u", passphrase="right")
    assert result.returncode == 0 and result.stdout.count(".") == 2
    assert '"event":"token.mint"' in result.stderr
