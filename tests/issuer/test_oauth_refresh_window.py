"""The refresh reuse window: a client that retries a refresh (its first answer was
lost to a timeout) gets the same successor instead of losing the login, while a
replay after the window, or after the successor was used, still revokes the family.
On both storage backends; the concurrent case runs two requests at once."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from issuer.db import secret_digest
from issuer.oauth.clients import Client
from issuer.oauth.refresh_tokens import refresh_tokens_table
from tests.issuer.oauth_flows import get_code, log_in, make_user, redeem, refresh, register

WINDOW = 10


@pytest.fixture
def make_app(make_issuer_app: Callable[..., Flask], keys_dir) -> Callable[..., Flask]:
    from issuer.keys import KeyRing

    KeyRing(keys_dir).init()
    return make_issuer_app


def first_tokens(app: Flask) -> tuple[Client, dict]:
    make_user(app)
    browser = app.test_client()
    log_in(browser, "alice@example.com")
    spa = register(app, public=True, first_party=True)[0]
    code, verifier = get_code(browser, spa)
    tokens = redeem(browser, spa, code, verifier)
    assert tokens.status_code == 200
    return spa, tokens.json


def family_rows(app: Flask, token: str) -> int:
    t = refresh_tokens_table
    with app.extensions["db"].connect() as conn:
        family = conn.execute(
            select(t.c.family_id).where(t.c.token_digest == secret_digest(token))
        ).scalar_one()
        return conn.execute(
            select(func.count()).select_from(t).where(t.c.family_id == family)
        ).scalar_one()


def age_rotation(app: Flask, token: str, seconds: int) -> None:
    t = refresh_tokens_table
    with app.extensions["db"].begin() as conn:
        conn.execute(
            update(t)
            .where(t.c.token_digest == secret_digest(token))
            .values(rotated_at=t.c.rotated_at - seconds)
        )


def test_a_retry_inside_the_window_gets_the_same_successor(make_app) -> None:
    app = make_app(refresh_reuse_interval=WINDOW)
    spa, tokens = first_tokens(app)
    client = app.test_client()
    first = refresh(client, spa, tokens["refresh_token"])
    retry = refresh(client, spa, tokens["refresh_token"])
    assert first.status_code == retry.status_code == 200, retry.text
    assert retry.json["refresh_token"] == first.json["refresh_token"]
    assert retry.json["access_token"] != first.json["access_token"]
    assert family_rows(app, tokens["refresh_token"]) == 2, "no second successor"
    # The family lives on through the successor.
    onwards = refresh(client, spa, first.json["refresh_token"])
    assert onwards.status_code == 200


def test_concurrent_refreshes_with_one_token_both_succeed(make_app) -> None:
    app = make_app(refresh_reuse_interval=WINDOW)
    spa, tokens = first_tokens(app)
    start = threading.Barrier(2)
    answers: list = []

    def send() -> None:
        client = app.test_client()
        start.wait()
        answers.append(refresh(client, spa, tokens["refresh_token"]))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert answers[0].json["refresh_token"] == answers[1].json["refresh_token"]
    assert family_rows(app, tokens["refresh_token"]) == 2
    assert refresh(app.test_client(), spa, answers[0].json["refresh_token"]).status_code == 200


def test_a_replay_after_the_window_revokes_the_family(make_app) -> None:
    app = make_app(refresh_reuse_interval=WINDOW)
    spa, tokens = first_tokens(app)
    client = app.test_client()
    successor = refresh(client, spa, tokens["refresh_token"]).json["refresh_token"]
    age_rotation(app, tokens["refresh_token"], WINDOW + 2)
    replay = refresh(client, spa, tokens["refresh_token"])
    assert replay.status_code == 400 and replay.json["error"] == "invalid_grant"
    assert refresh(client, spa, successor).json["error"] == "invalid_grant"


def test_a_retry_after_the_successor_was_used_revokes_the_family(make_app) -> None:
    """Inside the window too: once the successor is spent, the old token in other
    hands is a theft, not a retry."""
    app = make_app(refresh_reuse_interval=WINDOW)
    spa, tokens = first_tokens(app)
    client = app.test_client()
    successor = refresh(client, spa, tokens["refresh_token"]).json["refresh_token"]
    newest = refresh(client, spa, successor).json["refresh_token"]
    replay = refresh(client, spa, tokens["refresh_token"])
    assert replay.json["error"] == "invalid_grant"
    assert refresh(client, spa, newest).json["error"] == "invalid_grant"


def test_a_retry_after_a_revocation_finds_nothing(make_app) -> None:
    app = make_app(refresh_reuse_interval=WINDOW)
    spa, tokens = first_tokens(app)
    client = app.test_client()
    successor = refresh(client, spa, tokens["refresh_token"]).json["refresh_token"]
    revoked = client.post("/revoke", data={"token": successor, "client_id": spa.client_id})
    assert revoked.status_code == 200
    assert refresh(client, spa, tokens["refresh_token"]).json["error"] == "invalid_grant"


def test_another_client_cannot_retry_a_clients_token(make_app) -> None:
    app = make_app(refresh_reuse_interval=WINDOW)
    spa, tokens = first_tokens(app)
    thief = register(app, public=True, first_party=True, name="thief")[0]
    client = app.test_client()
    assert refresh(client, spa, tokens["refresh_token"]).status_code == 200
    assert refresh(client, thief, tokens["refresh_token"]).json["error"] == "invalid_grant"


def test_without_a_window_a_retry_is_a_replay(make_app) -> None:
    app = make_app(refresh_reuse_interval=0)
    spa, tokens = first_tokens(app)
    client = app.test_client()
    successor = refresh(client, spa, tokens["refresh_token"]).json["refresh_token"]
    assert refresh(client, spa, tokens["refresh_token"]).json["error"] == "invalid_grant"
    assert refresh(client, spa, successor).json["error"] == "invalid_grant"


def test_the_stored_successor_opens_only_with_the_token_it_replaced(make_app) -> None:
    """The database keeps the successor sealed under a key derived from the token it
    replaced, which it stores only as a digest: a copy of the table hands out nothing."""
    app = make_app(refresh_reuse_interval=WINDOW)
    spa, tokens = first_tokens(app)
    successor = refresh(app.test_client(), spa, tokens["refresh_token"]).json["refresh_token"]
    t = refresh_tokens_table
    with app.extensions["db"].connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(t))]
    assert successor not in repr(rows)
    assert tokens["refresh_token"] not in repr(rows)


def test_revoking_a_just_rotated_token_revokes_its_family(make_app) -> None:
    """A client whose refresh answer was lost logs out with the only token it knows:
    the successor the window would still hand out dies with it."""
    app = make_app(refresh_reuse_interval=WINDOW)
    spa, tokens = first_tokens(app)
    client = app.test_client()
    successor = refresh(client, spa, tokens["refresh_token"]).json["refresh_token"]
    revoked = client.post(
        "/revoke", data={"token": tokens["refresh_token"], "client_id": spa.client_id}
    )
    assert revoked.status_code == 200
    assert refresh(client, spa, tokens["refresh_token"]).json["error"] == "invalid_grant"
    assert refresh(client, spa, successor).json["error"] == "invalid_grant"
