"""The local `auth` schema: session hand-off, claims, and every way to forge one."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable

import psycopg
import pytest

from proxy.session import SessionKey as ProxySessionKey
from stack.migrate import SQL_DIR

Login = Callable[..., psycopg.Connection]


def user_id(conn: psycopg.Connection) -> str | None:
    return conn.execute("SELECT auth.user_id()").fetchone()[0]


def refused(conn: psycopg.Connection, token: str) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught:
        conn.execute("SELECT auth.jwt_session_init(%s)", [token])
    return caught.value


def test_no_session_means_json_null_and_no_identity(connect) -> None:
    conn = connect("authenticated")
    row = conn.execute("SELECT auth.session() = 'null'::jsonb, auth.user_id()").fetchone()
    assert row == (True, None)


def test_claims_round_trip_without_the_internal_pid(connect, session_key, alice) -> None:
    conn = connect("authenticated")
    claims = {
        "sub": alice,
        "iss": "http://127.0.0.1:8001",
        "aud": ["todos"],
        "exp": int(time.time()) + 60,
        "name": 'Zoë "quoted" \\ back',
        "nested": {"roles": ["a", "b"], "n": 1.5},
    }
    token = session_key.sign(claims | {"pid": conn.info.backend_pid})
    conn.execute("SELECT auth.jwt_session_init(%s)", [token])
    assert conn.execute("SELECT auth.session()").fetchone()[0] == claims
    assert user_id(conn) == alice


def test_pg_session_jwt_0_4_functions_only_when_asked_for(connect, session_key, alice) -> None:
    """Neon installs pg_session_jwt 0.3.1: auth.jwt() and auth.uid() (0.4.0) are absent
    by default, so a policy using them fails here as it would there; with
    LOCAL_PG_SESSION_JWT=0.4.0 they are what 0.4.0 gives."""
    conn = connect("authenticated")
    for function in ("auth.jwt()", "auth.uid()"):
        with pytest.raises(psycopg.errors.UndefinedFunction):
            conn.execute(f"SELECT {function}")
    admin = connect("postgres")
    subject = uuid.uuid4()
    with admin.transaction(force_rollback=True):
        admin.execute((SQL_DIR / "local" / "30_auth_0_4.sql").read_text().encode())
        admin.execute("SET LOCAL ROLE authenticated")
        for sub, uid in ((str(subject), subject), ("not-a-uuid", None)):
            token = session_key.token_for(admin, sub=sub)
            admin.execute("SELECT auth.jwt_session_init(%s)", [token])
            jwt, got = admin.execute("SELECT auth.jwt(), auth.uid()").fetchone()
            assert (jwt["sub"], got) == (sub, uid)
    with pytest.raises(psycopg.errors.UndefinedFunction):
        connect("authenticated").execute("SELECT auth.uid()")


def test_non_string_subject_is_refused(connect, session_key) -> None:
    conn = connect("authenticated")
    error = refused(conn, session_key.sign({"sub": 42, "pid": conn.info.backend_pid}))
    assert (error.sqlstate, error.diag.message_primary) == (
        "42804",
        "invalid subject claim in the session token",
    )


def test_init_checks_that_a_session_key_is_installed(connect, session_key) -> None:
    connect("authenticated").execute("SELECT auth.init()")


def test_leeway_accepts_60_seconds_either_side(connect, session_key, alice) -> None:
    """pg_session_jwt 0.3.1's CLOCK_SKEW_LEEWAY (the proxy's own is 30 s)."""
    conn = connect("authenticated")
    now = int(time.time())
    token = session_key.token_for(conn, sub=alice, exp=now - 50, nbf=now + 50)
    conn.execute("SELECT auth.jwt_session_init(%s)", [token])
    assert user_id(conn) == alice


def tamper_payload(token: str, **changes: object) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps(claims | changes).encode()).rstrip(b"=")
    return f"{header}.{forged.decode()}.{signature}"


def with_fourth_segment(token: str, secret: bytes) -> str:
    """`token` with one more segment before its signature, all of it signed."""
    signing_input = token.rsplit(".", 1)[0] + ".e30"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


FORGERIES: dict[str, tuple[Callable, str, str]] = {
    # name: (make(conn, key) -> token, sqlstate, message)
    "signed with another secret": (
        lambda c, k: dataclasses.replace(k, secret=secrets.token_bytes(32)).token_for(c, sub="x"),
        "23514",
        "invalid session token signature",
    ),
    "unknown key id": (
        lambda c, k: dataclasses.replace(k, kid="no-such-key").token_for(c, sub="x"),
        "23514",
        "session token signed by an unknown session key",
    ),
    "tampered payload": (
        lambda c, k: tamper_payload(k.token_for(c, sub="x"), sub="victim"),
        "23514",
        "invalid session token signature",
    ),
    "truncated signature": (
        lambda c, k: k.token_for(c, sub="x")[:-1],
        "42804",
        "invalid session token encoding",
    ),
    "a character appended": (
        lambda c, k: k.token_for(c, sub="x") + "A",
        "42804",
        "invalid session token encoding",
    ),
    "a fourth segment, signed": (
        lambda c, k: with_fourth_segment(k.token_for(c, sub="x"), k.secret),
        "42804",
        "invalid session token encoding",
    ),
    "another backend's pid": (
        lambda c, k: k.sign({"sub": "x", "pid": c.info.backend_pid + 1}),
        "23514",
        "session token belongs to another backend",
    ),
    "no pid": (
        lambda c, k: k.sign({"sub": "x"}),
        "42804",
        "session token has no pid claim",
    ),
    "expired beyond the leeway": (
        lambda c, k: k.token_for(c, sub="x", exp=int(time.time()) - 61),
        "23514",
        "Token used after it has expired",
    ),
    "not yet valid beyond the leeway": (
        lambda c, k: k.token_for(c, sub="x", nbf=int(time.time()) + 61),
        "23514",
        "Token used before it is ready",
    ),
    "exp is not a number": (
        lambda c, k: k.token_for(c, sub="x", exp="never"),
        "42804",
        "'exp' (Expiration) must be an integer representing seconds since unix epoch",
    ),
    "exp is not an integer": (
        lambda c, k: k.token_for(c, sub="x", exp=time.time() + 600),
        "42804",
        "'exp' (Expiration) must be an integer representing seconds since unix epoch",
    ),
    "nbf is not an integer": (
        lambda c, k: k.token_for(c, sub="x", nbf=1.5),
        "42804",
        "'nbf' (Not Before) must be an integer representing seconds since unix epoch",
    ),
    "alg none": (
        lambda c, k: k.sign({"sub": "x", "pid": c.info.backend_pid}, {"alg": "none", "kid": k.kid}),
        "42804",
        "session token must be an HS256 JWS",
    ),
    "header is not JSON": (
        lambda c, k: "bm90IGpzb24." + k.token_for(c, sub="x").split(".", 1)[1],
        "42804",
        "invalid session token encoding",
    ),
    "header is not UTF-8": (
        lambda c, k: "__79." + k.token_for(c, sub="x").split(".", 1)[1],
        "42804",
        "invalid session token encoding",
    ),
    "garbage": (lambda c, k: "not a token", "42804", "invalid session token encoding"),
    "empty": (lambda c, k: "", "42804", "invalid session token encoding"),
    "bad length": (lambda c, k: "a.b." + "A" * 43, "42804", "invalid session token encoding"),
}


@pytest.mark.parametrize("case", FORGERIES, ids=list(FORGERIES))
def test_forged_tokens_are_refused_precisely(connect, session_key, case) -> None:
    make, sqlstate, message = FORGERIES[case]
    conn = connect("authenticated")
    error = refused(conn, make(conn, session_key))
    assert (error.sqlstate, error.diag.message_primary) == (sqlstate, message)
    assert user_id(conn) is None


@pytest.mark.parametrize("case", [case for case in FORGERIES if case != "empty"])
def test_forged_tokens_written_into_the_setting_are_refused_precisely(
    login, session_key, alice, case
) -> None:
    """What a policy calls on every statement, not only the hand-off, says why."""
    make, sqlstate, message = FORGERIES[case]
    conn = login(alice)
    conn.execute("SELECT set_config('auth.session_token', %s, false)", [make(conn, session_key)])
    with pytest.raises(psycopg.Error) as caught:
        user_id(conn)
    assert (caught.value.sqlstate, caught.value.diag.message_primary) == (sqlstate, message)


def test_the_proxys_header_is_the_one_looked_up_without_parsing(connect, neon_db) -> None:
    """auth.session() finds the key by comparing the header segment the proxy writes."""
    key = ProxySessionKey.generate()
    key.install(neon_db.owner_url)
    try:
        header = key.token({"sub": "x"}, pid=1).split(".")[0]
        stored = connect("neondb_owner").execute(
            "SELECT header_segment FROM auth_private.session_keys WHERE kid = %s", [key.kid]
        )
        assert stored.fetchone() == (header,)
    finally:
        key.drop(neon_db.owner_url)


def test_a_valid_token_with_another_header_spelling_is_accepted(
    connect, session_key, alice
) -> None:
    conn = connect("authenticated")
    header = {"kid": session_key.kid, "alg": "HS256"}
    token = session_key.sign({"sub": alice, "pid": conn.info.backend_pid}, header)
    conn.execute("SELECT auth.jwt_session_init(%s)", [token])
    assert user_id(conn) == alice


def test_null_token_is_refused(connect) -> None:
    error = refused(connect("authenticated"), None)
    assert error.sqlstate == "22004"


def test_a_refused_token_keeps_the_previous_session(login, session_key, alice) -> None:
    conn = login(alice)
    refused(conn, session_key.sign({"sub": "mallory", "pid": conn.info.backend_pid + 1}))
    assert user_id(conn) == alice


def test_a_token_replayed_on_another_backend_is_refused(login, connect, alice) -> None:
    victim = login(alice)
    token = victim.execute("SELECT current_setting('auth.session_token')").fetchone()[0]
    thief = connect("authenticated")
    error = refused(thief, token)
    assert error.diag.message_primary == "session token belongs to another backend"
    thief.execute("SELECT set_config('auth.session_token', %s, false)", [token])
    with pytest.raises(psycopg.Error, match="belongs to another backend"):
        user_id(thief)


@pytest.mark.parametrize(
    "setting", ["auth.session_token", "pg_session_jwt.jwt", "request.jwt.claims"]
)
def test_setting_a_guc_by_hand_cannot_change_the_identity(
    login, session_key, alice, setting
) -> None:
    conn = login(alice)
    unsigned = session_key.sign({"sub": "victim", "pid": conn.info.backend_pid}).rsplit(".", 1)[0]
    for value in (
        unsigned + "." + "A" * 43,
        json.dumps({"sub": "victim"}),
        f"{unsigned}.",
    ):
        conn.execute("SELECT set_config(%s, %s, false)", [setting, value])
        if setting == "auth.session_token":
            with pytest.raises(psycopg.Error) as caught:
                user_id(conn)
            assert caught.value.sqlstate in ("23514", "42804")
        else:
            assert user_id(conn) == alice


def test_a_dropped_key_ends_its_sessions(connect, fresh_key, alice) -> None:
    conn = connect("authenticated")
    conn.execute("SELECT auth.jwt_session_init(%s)", [fresh_key.token_for(conn, sub=alice)])
    assert user_id(conn) == alice
    dropped = connect("neondb_owner").execute(
        "SELECT auth_private.drop_session_key(%s::text)", [fresh_key.kid]
    )
    assert dropped.fetchone()[0] is True
    with pytest.raises(psycopg.Error, match="unknown session key"):
        user_id(conn)


def test_reinstalling_a_key_id_replaces_its_secret(connect, fresh_key, alice) -> None:
    conn = connect("authenticated")
    old_token = fresh_key.token_for(conn, sub=alice)
    connect("neondb_owner").execute(
        "SELECT auth_private.install_session_key(%s::text, %s::bytea)",
        [fresh_key.kid, secrets.token_bytes(48)],
    )
    assert refused(conn, old_token).diag.message_primary == "invalid session token signature"


@pytest.mark.parametrize("secret_size", [32, 64, 65, 100])
def test_hmac_matches_python_for_every_key_size(connect, fresh_key, alice, secret_size) -> None:
    key = dataclasses.replace(fresh_key, secret=secrets.token_bytes(secret_size))
    connect("neondb_owner").execute(
        "SELECT auth_private.install_session_key(%s::text, %s::bytea)", [key.kid, key.secret]
    )
    conn = connect("authenticated")
    conn.execute("SELECT auth.jwt_session_init(%s)", [key.token_for(conn, sub=alice)])
    assert user_id(conn) == alice


@pytest.mark.parametrize(
    ("kid", "secret", "message"),
    [
        ("", b"k" * 32, "session key id must be 1 to 128 characters"),
        ("short", b"k" * 31, "session key must be at least 32 bytes"),
        ("null", None, "session key must be at least 32 bytes"),
    ],
)
def test_weak_session_keys_are_refused(connect, kid, secret, message) -> None:
    with pytest.raises(psycopg.Error) as caught:
        connect("neondb_owner").execute(
            "SELECT auth_private.install_session_key(%s::text, %s::bytea)", [kid, secret]
        )
    assert (caught.value.sqlstate, caught.value.diag.message_primary) == ("22023", message)


def test_functions_pin_search_path_and_stay_in_the_leader(connect) -> None:
    """PARALLEL SAFE would let a worker run them, and a worker has another pid. A
    function either pins search_path or has a SQL-standard body, whose names are
    bound when it is created (a caller's search_path cannot redirect them);
    kept_claims() does both (see auth.session())."""
    rows = connect("postgres").execute(
        """
        SELECT p.proname, p.provolatile, p.proparallel, p.prosecdef, p.proconfig,
            p.prosqlbody IS NOT NULL
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'auth' OR p.oid IN (
            'auth_private.verified_claims(text)'::regprocedure,
            'auth_private.session_claims(text)'::regprocedure,
            'auth_private.kept_claims(text)'::regprocedure
        )
        """
    )
    marks = {row[0]: row[1:] for row in rows}
    pinned = ['search_path=""']
    assert marks == {
        "init": ("s", "s", True, pinned, False),
        "jwt_session_init": ("v", "u", True, pinned, False),
        "session": ("s", "r", True, pinned, False),
        "session_claims": ("s", "r", False, pinned, False),
        "kept_claims": ("s", "r", False, pinned, True),
        "verified_claims": ("s", "r", False, pinned, False),
        "user_id": ("s", "r", False, None, True),
    }


@pytest.mark.parametrize("reset", ["DISCARD ALL", "RESET ALL"])
def test_resetting_the_connection_ends_the_session(login, alice, reset) -> None:
    conn = login(alice)
    conn.execute(reset)
    assert conn.execute("SELECT auth.session() = 'null'::jsonb").fetchone()[0] is True
    assert user_id(conn) is None


# What auth.jwt_session_init() verified is kept per backend, so that auth.session()
# reads it: the row must never accept what verifying would refuse.


def verified_row(connect: Callable[[str], psycopg.Connection], pid: int) -> tuple | None:
    return (
        connect("neondb_owner")
        .execute(
            "SELECT token, claims ->> 'sub' FROM auth_private.verified_sessions WHERE pid = %s",
            [pid],
        )
        .fetchone()
    )


def test_a_hand_off_keeps_its_verified_claims_for_its_backend(login, connect, alice) -> None:
    conn = login(alice)
    token = conn.execute("SELECT current_setting('auth.session_token')").fetchone()[0]
    assert verified_row(connect, conn.info.backend_pid) == (token, alice)
    assert user_id(conn) == alice


def test_reinstalling_a_key_ends_the_sessions_it_verified(connect, fresh_key, alice) -> None:
    """A new secret under the same key id: the kept row no longer counts, and the
    token, verified again, is refused. The same secret again: verified again, kept."""
    conn = connect("authenticated")
    conn.execute("SELECT auth.jwt_session_init(%s)", [fresh_key.token_for(conn, sub=alice)])
    assert verified_row(connect, conn.info.backend_pid) is not None
    owner = connect("neondb_owner")
    install = "SELECT auth_private.install_session_key(%s::text, %s::bytea)"
    owner.execute(install, [fresh_key.kid, fresh_key.secret])
    assert user_id(conn) == alice
    owner.execute(install, [fresh_key.kid, secrets.token_bytes(32)])
    with pytest.raises(psycopg.Error, match="invalid session token signature"):
        user_id(conn)


def test_a_kept_session_still_expires(connect, session_key, alice) -> None:
    """exp is checked on every read of the row, with verifying's leeway and error."""
    conn = connect("authenticated")
    now = int(time.time())
    token = session_key.token_for(conn, sub=alice, exp=now - 58)  # 60 s leeway: 1-2 s left
    conn.execute("SELECT auth.jwt_session_init(%s)", [token])
    assert verified_row(connect, conn.info.backend_pid) is not None
    assert user_id(conn) == alice
    time.sleep(max(0.0, now + 2.2 - time.time()))
    with pytest.raises(psycopg.Error) as caught:
        user_id(conn)
    assert caught.value.diag.message_primary == "Token used after it has expired"


@pytest.mark.parametrize(
    "begin",
    [
        "BEGIN READ ONLY",
        "BEGIN ISOLATION LEVEL REPEATABLE READ",
        "BEGIN ISOLATION LEVEL SERIALIZABLE",
    ],
)
def test_hand_offs_outside_read_write_read_committed_verify_on_every_call(
    connect, session_key, alice, begin
) -> None:
    """No row is written where a write would fail (read only, a standby), could fail
    on another session's cleanup or fail other users' serializable transactions:
    their sessions still work."""
    conn = connect("authenticated")
    conn.execute(begin)
    conn.execute("SELECT auth.jwt_session_init(%s)", [session_key.token_for(conn, sub=alice)])
    assert user_id(conn) == alice
    conn.execute("COMMIT")
    assert verified_row(connect, conn.info.backend_pid) is None
    assert user_id(conn) == alice


def test_a_rolled_back_hand_off_keeps_nothing(connect, session_key, alice) -> None:
    conn = connect("authenticated")
    conn.execute("BEGIN")
    conn.execute("SELECT auth.jwt_session_init(%s)", [session_key.token_for(conn, sub=alice)])
    conn.execute("ROLLBACK")
    assert verified_row(connect, conn.info.backend_pid) is None
    assert user_id(conn) is None


def test_rows_of_ended_backends_are_forgotten(login, connect, alice, bob) -> None:
    ended = login(alice)
    ended_pid = ended.info.backend_pid
    ended.close()
    owner = connect("neondb_owner")
    for _ in range(100):  # the backend's exit is not instant
        gone = owner.execute(
            "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s)", [ended_pid]
        ).fetchone()[0]
        if gone:
            break
        time.sleep(0.05)
    assert verified_row(connect, ended_pid) is not None
    login(bob)  # a new backend's first row
    assert verified_row(connect, ended_pid) is None


def test_a_dropped_key_forgets_the_sessions_it_verified(connect, fresh_key, alice) -> None:
    conn = connect("authenticated")
    conn.execute("SELECT auth.jwt_session_init(%s)", [fresh_key.token_for(conn, sub=alice)])
    connect("neondb_owner").execute(
        "SELECT auth_private.drop_session_key(%s::text)", [fresh_key.kid]
    )
    assert verified_row(connect, conn.info.backend_pid) is None


def test_a_first_hand_off_never_waits_on_another_backends_cleanup(
    login, connect, session_key, alice, bob
) -> None:
    """A backend's first row clears the rows of ended backends; another backend
    clearing at the same time skips the rows the first holds instead of waiting
    for its transaction (a request that would stall every new backend)."""
    ended = login(alice)
    ended_pid = ended.info.backend_pid
    ended.close()
    owner = connect("neondb_owner")
    for _ in range(100):
        running = owner.execute(
            "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s)", [ended_pid]
        ).fetchone()[0]
        if not running:
            break
        time.sleep(0.05)
    first, second = connect("authenticated"), connect("authenticated")
    first.execute("BEGIN")
    first.execute("SELECT auth.jwt_session_init(%s)", [session_key.token_for(first, sub=alice)])
    second.execute("SET lock_timeout = '2s'")
    second.execute("SELECT auth.jwt_session_init(%s)", [session_key.token_for(second, sub=bob)])
    assert user_id(second) == bob
    first.execute("COMMIT")
    assert verified_row(connect, ended_pid) is None


def test_a_hand_off_never_waits_on_a_lock_another_session_holds_on_its_row(
    login, connect, session_key, alice, bob
) -> None:
    """Another backend's cleanup can hold this pid's row (left by an ended backend
    with the same pid, or seen through a stale look at who runs): the hand-off keeps
    nothing this time rather than wait, and the session still works."""
    conn = login(alice)
    owner = connect("neondb_owner")
    owner.execute("BEGIN")
    owner.execute(
        "SELECT FROM auth_private.verified_sessions WHERE pid = %s FOR UPDATE",
        [conn.info.backend_pid],
    )
    conn.execute("SET lock_timeout = '2s'")
    conn.execute("SELECT auth.jwt_session_init(%s)", [session_key.token_for(conn, sub=bob)])
    assert user_id(conn) == bob
    owner.execute("COMMIT")
    assert verified_row(connect, conn.info.backend_pid)[1] == alice  # not kept, not lost
    assert user_id(conn) == bob
