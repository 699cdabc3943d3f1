"""The account security page over HTTP, as its owner and as an attacker: authenticator
codes (RFC 6238, computed here from the setup key the page shows), recovery codes,
changing password and email, sessions, apps, deleting the account, `amr` in ID tokens,
and the passkey endpoints' answers to bad input (the ceremonies themselves run in
Chromium: tests/app/test_browser_accounts.py)."""

from __future__ import annotations

import html
import re
import time
from urllib.parse import urlsplit

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from issuer.accounts import users
from issuer.accounts.models import (
    account_links,
    login_sessions,
    passkeys,
    recovery_codes,
    totp_credentials,
)
from issuer.oauth.clients import Client
from tests.issuer.account_pages import NEW_PASSWORD, claims_of, forgot, log_in, unique
from tests.issuer.oauth_flows import PASSWORD, csrf_token, get_code, redeem, refresh, register
from tests.support.mail import Inbox, link_in, text_of

SECURITY = "/account/security"


def make_verified(app: Flask, email: str | None = None) -> str:
    email = email or unique("owner")
    with app.app_context():
        users.create_user(app.extensions["db"], email, PASSWORD, email_verified=True)
    return email


def post_security(browser: FlaskClient, action: str, **fields: str):
    """Post one of the security page's forms, with the page's CSRF token."""
    page = browser.get(SECURITY)
    assert page.status_code == 200, page.text
    return browser.post(action, data={"csrf_token": csrf_token(page.text), **fields})


def enrol(browser: FlaskClient) -> tuple[pyotp.TOTP, list[str]]:
    """Turn the authenticator app on as a person would: read the setup key, type a code."""
    page = browser.get("/account/two-factor")
    assert page.status_code == 200
    key = re.search(r'data-testid="setup-key">([A-Z2-7 ]+)<', page.text).group(1)
    assert "<svg" in page.text, "a QR code, inline"
    app_totp = pyotp.TOTP(key.replace(" ", ""))
    form = {"csrf_token": csrf_token(page.text), "password": PASSWORD}
    wrong = browser.post("/account/two-factor", data={**form, "code": "000000"})
    assert wrong.status_code == 400
    done = browser.post("/account/two-factor", data={**form, "code": app_totp.now()})
    assert done.status_code == 200, done.text
    codes = re.findall(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", done.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    return app_totp, codes


def next_code(app_totp: pyotp.TOTP) -> str:
    """A code of a later step than any used so far (each step's code works once)."""
    return app_totp.at(time.time() + 30)


def enter_code(browser: FlaskClient, code: str):
    page = browser.get("/login/code")
    assert page.status_code == 200, page.headers.get("Location")
    return browser.post("/login/code", data={"csrf_token": csrf_token(page.text), "code": code})


def id_token_claims(app: Flask, browser: FlaskClient, client: Client) -> dict:
    code, verifier = get_code(browser, client)
    return claims_of(redeem(browser, client, code, verifier).json["id_token"])


# -- authenticator app --------------------------------------------------------------


def test_a_password_login_says_pwd_and_an_authenticator_login_says_otp_and_mfa(
    app: Flask,
) -> None:
    client, _ = register(app, first_party=True, public=True)
    email = make_verified(app)
    browser = app.test_client()
    assert log_in(browser, email).status_code == 303
    claims = id_token_claims(app, browser, client)
    assert claims["amr"] == ["pwd"] and claims["auth_time"] <= time.time()

    app_totp, _ = enrol(browser)
    fresh = app.test_client()
    first = log_in(fresh, email)
    assert first.status_code == 303 and first.headers["Location"] == "/login/code"
    assert fresh.get("/account").status_code == 302, "the password alone signs nobody in"
    assert enter_code(fresh, next_code(app_totp)).status_code == 303
    assert fresh.get("/account").status_code == 200
    assert id_token_claims(app, fresh, client)["amr"] == ["pwd", "otp", "mfa"]


def test_turning_it_on_needs_the_password_and_tells_the_owner(app: Flask, inbox: Inbox) -> None:
    """Whoever holds only the session (a stolen cookie, a browser left open) cannot
    lock the owner out with an authenticator app of their own."""
    email = make_verified(app)
    owner = app.test_client()
    log_in(owner, email)
    page = owner.get("/account/two-factor")
    key = re.search(r'data-testid="setup-key">([A-Z2-7 ]+)<', page.text).group(1)
    code = pyotp.TOTP(key.replace(" ", "")).now()
    form = {"csrf_token": csrf_token(page.text), "code": code}
    assert owner.post("/account/two-factor", data=form).status_code == 400
    wrong = owner.post("/account/two-factor", data={**form, "password": "not it"})
    assert wrong.status_code == 400 and "not your current password" in wrong.text
    # The setup key travels sealed in the (signed, readable) session cookie.
    cookie = owner.get_cookie("issuer_session").value
    session = app.session_interface.get_signing_serializer(app).loads(cookie)
    assert key.replace(" ", "") not in str(session)
    done = owner.post("/account/two-factor", data={**form, "password": PASSWORD})
    assert done.status_code == 200 and "recovery-codes" in done.text
    notice = inbox.latest(email)
    assert notice["Subject"] == "A new way to sign in was added to your account"
    assert "An authenticator app was just added" in text_of(notice)


def test_a_code_works_once_and_a_wrong_code_is_refused(app: Flask) -> None:
    email = make_verified(app)
    owner = app.test_client()
    log_in(owner, email)
    app_totp, _ = enrol(owner)
    code = next_code(app_totp)
    first = app.test_client()
    log_in(first, email)
    assert enter_code(first, code).status_code == 303
    replay = app.test_client()  # the same code, seen over a shoulder, in the same 30 s
    log_in(replay, email)
    refused = enter_code(replay, code)
    assert refused.status_code == 401 and "not right, or was used already" in refused.text
    assert replay.get("/account").status_code == 302
    assert enter_code(replay, "").status_code == 400, "no code at all"


def test_the_setup_code_itself_cannot_open_the_next_login(app: Flask) -> None:
    email = make_verified(app)
    owner = app.test_client()
    log_in(owner, email)
    app_totp, _ = enrol(owner)
    other = app.test_client()
    log_in(other, email)
    assert enter_code(other, app_totp.now()).status_code == 401


def test_guessing_codes_is_throttled_per_account(app: Flask) -> None:
    email = make_verified(app)
    owner = app.test_client()
    log_in(owner, email)
    app_totp, _ = enrol(owner)
    for i in range(5):
        guesser = app.test_client()  # a new browser for every guess: the limit is the account's
        log_in(guesser, email)
        assert enter_code(guesser, f"{i:06d}").status_code == 401
    late = app.test_client()
    log_in(late, email)
    throttled = enter_code(late, next_code(app_totp))
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    assert late.get("/account").status_code == 302


def test_a_recovery_code_works_once(app: Flask) -> None:
    email = make_verified(app)
    owner = app.test_client()
    log_in(owner, email)
    _, codes = enrol(owner)
    lost_phone = app.test_client()
    log_in(lost_phone, email)
    assert enter_code(lost_phone, codes[3].upper()).status_code == 303
    assert "9 recovery codes left" in lost_phone.get(SECURITY).text
    again = app.test_client()
    log_in(again, email)
    assert enter_code(again, codes[3]).status_code == 401


def test_the_code_step_needs_a_password_first_and_expires(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    stranger = app.test_client()
    assert stranger.get("/login/code").headers["Location"] == "/login"
    email = make_verified(app)
    owner = app.test_client()
    log_in(owner, email)
    enrol(owner)
    slow = app.test_client()
    log_in(slow, email)
    later = time.time() + 301
    monkeypatch.setattr(time, "time", lambda: later)
    assert slow.get("/login/code").headers["Location"] == "/login"


def test_the_secret_is_sealed_at_rest(app: Flask) -> None:
    email = make_verified(app)
    owner = app.test_client()
    log_in(owner, email)
    app_totp, codes = enrol(owner)
    with app.app_context(), app.extensions["db"].connect() as conn:
        stored = conn.execute(select(totp_credentials.c.secret)).scalars().all()
        digests = conn.execute(select(recovery_codes.c.id)).scalars().all()
    assert stored and all(app_totp.secret not in s for s in stored)
    assert not {c.replace("-", "") for c in codes} & set(digests)


def test_turning_it_off_needs_the_password_and_a_code(app: Flask) -> None:
    email = make_verified(app)
    owner = app.test_client()
    log_in(owner, email)
    app_totp, _ = enrol(owner)
    action = "/account/two-factor/disable"
    wrong_pw = post_security(
        owner, action, **{"totp-password": "not it", "totp-code": next_code(app_totp)}
    )
    assert wrong_pw.status_code == 400 and "not your current password" in wrong_pw.text
    wrong_code = post_security(owner, action, **{"totp-password": PASSWORD, "totp-code": "111111"})
    assert wrong_code.status_code == 400
    assert "On." in owner.get(SECURITY).text
    done = post_security(
        owner, action, **{"totp-password": PASSWORD, "totp-code": next_code(app_totp)}
    )
    assert done.status_code == 303
    assert log_in(app.test_client(), email).headers["Location"] != "/login/code"


def test_operators_reset_a_second_factor_from_the_cli(app: Flask) -> None:
    email = make_verified(app)
    owner = app.test_client()
    log_in(owner, email)
    enrol(owner)
    cli = app.test_cli_runner()
    result = cli.invoke(args=["users", "reset-2fa", email])
    assert result.exit_code == 0, result.output
    assert owner.get("/account").status_code == 302, "its sessions ended"
    assert log_in(app.test_client(), email).headers["Location"] != "/login/code"
    again = cli.invoke(args=["users", "reset-2fa", email])
    assert again.exit_code == 1 and "has no authenticator app" in again.output
    unknown = cli.invoke(args=["users", "reset-2fa", "nobody@example.com"])
    assert unknown.exit_code == 1 and "No account" in unknown.output


# -- password, email, sessions, apps --------------------------------------------------


def test_changing_the_password_keeps_this_browser_and_ends_the_rest(
    app: Flask, inbox: Inbox
) -> None:
    client, _ = register(app, first_party=True, public=True)
    email = make_verified(app)
    elsewhere = app.test_client()
    log_in(elsewhere, email)
    code, verifier = get_code(elsewhere, client)
    refresh_token = redeem(elsewhere, client, code, verifier).json["refresh_token"]
    owner = app.test_client()
    log_in(owner, email)
    fields = {"password-password": NEW_PASSWORD, "password-confirm": NEW_PASSWORD}
    wrong = post_security(owner, "/account/password", **{"password-current": "nope", **fields})
    assert wrong.status_code == 400 and "not your current password" in wrong.text
    short = post_security(
        owner,
        "/account/password",
        **{"password-current": PASSWORD, "password-password": "x", "password-confirm": "x"},
    )
    assert short.status_code == 400
    assert log_in(app.test_client(), email).status_code == 303, "nothing changed yet"
    done = post_security(owner, "/account/password", **{"password-current": PASSWORD, **fields})
    assert done.status_code == 303
    assert owner.get("/account").status_code == 200, "this browser stays signed in"
    assert elsewhere.get("/account").status_code == 302
    assert refresh(elsewhere, client, refresh_token).json["error"] == "invalid_grant"
    assert log_in(app.test_client(), email).status_code == 401
    assert log_in(app.test_client(), email, NEW_PASSWORD).status_code == 303
    assert inbox.latest(email)["Subject"] == "Your password was changed"


def test_changing_the_password_keeps_the_logins_time_and_methods(app: Flask) -> None:
    """Typing the password on the security page is no fresh login: `auth_time` and
    `amr` stay those of the login that opened the session."""
    client, _ = register(app, first_party=True, public=True)
    email = make_verified(app)
    owner = app.test_client()
    log_in(owner, email)
    before = id_token_claims(app, owner, client)
    time.sleep(1.1)
    fields = {"password-password": NEW_PASSWORD, "password-confirm": NEW_PASSWORD}
    post_security(owner, "/account/password", **{"password-current": PASSWORD, **fields})
    after = id_token_claims(app, owner, client)
    assert (after["auth_time"], after["amr"]) == (before["auth_time"], before["amr"])


def test_a_new_password_voids_a_pending_move_of_the_address(app: Flask, inbox: Inbox) -> None:
    """An intruder who asked to move the account to their own address loses that
    link once the owner changes the password."""
    email, theirs = make_verified(app), unique("intruder")
    intruder = app.test_client()
    log_in(intruder, email)
    fields = {"email-email": theirs, "email-password": PASSWORD}
    assert post_security(intruder, "/account/email", **fields).status_code == 200
    link = link_in(inbox.latest(theirs), "/account/email/confirm")
    owner = app.test_client()
    log_in(owner, email)
    fields = {"password-password": NEW_PASSWORD, "password-confirm": NEW_PASSWORD}
    post_security(owner, "/account/password", **{"password-current": PASSWORD, **fields})
    page = app.test_client().get(link[link.index("/account") :])
    assert page.status_code == 400, "the link is void"
    assert log_in(app.test_client(), email, NEW_PASSWORD).status_code == 303


def test_anyone_filling_the_accounts_mail_limit_cannot_hush_a_security_notice(
    app: Flask, inbox: Inbox
) -> None:
    """Five reset requests (anonymous, from one address) spend the account's mail an
    hour; the notice of a changed password still goes out."""
    email = make_verified(app)
    for _ in range(6):
        assert forgot(app.test_client(), email, address="198.51.100.9").status_code == 200
    resets = inbox.latest(email, 4)
    assert resets["Subject"] == "Choose a new password"
    owner = app.test_client()
    log_in(owner, email)
    fields = {"password-password": NEW_PASSWORD, "password-confirm": NEW_PASSWORD}
    post_security(owner, "/account/password", **{"password-current": PASSWORD, **fields})
    assert inbox.latest(email, 5)["Subject"] == "Your password was changed"


def test_changing_the_email_needs_the_new_mailbox_and_tells_the_old(
    app: Flask, inbox: Inbox
) -> None:
    email = make_verified(app)
    new = unique("moved")
    owner = app.test_client()
    log_in(owner, email)
    wrong = post_security(owner, "/account/email", **{"email-email": new, "email-password": "x"})
    assert wrong.status_code == 400
    asked = post_security(
        owner, "/account/email", **{"email-email": new, "email-password": PASSWORD}
    )
    assert asked.status_code == 200 and "Check your email" in asked.text
    assert log_in(app.test_client(), email).status_code == 303, "nothing moves before the link"
    link = link_in(inbox.latest(new), "/account/email/confirm")
    path = link[link.index("/account") :]
    other_browser = app.test_client()  # the mail may be read anywhere
    page = other_browser.get(path)
    assert page.status_code == 200 and new in page.text
    token = re.search(r'name="token" type="hidden" value="([^"]+)"', page.text).group(1)
    done = other_browser.post(
        "/account/email/confirm", data={"csrf_token": csrf_token(page.text), "token": token}
    )
    assert done.status_code == 303
    assert log_in(app.test_client(), new).status_code == 303
    assert log_in(app.test_client(), email).status_code == 401
    assert inbox.latest(email)["Subject"] == "Your account moved to another email address"
    again = other_browser.post(
        "/account/email/confirm", data={"csrf_token": csrf_token(page.text), "token": token}
    )
    assert again.status_code == 400, "the link worked once"


def test_moving_to_an_address_that_has_an_account_changes_nothing(app: Flask, inbox: Inbox) -> None:
    email, taken = make_verified(app), make_verified(app)
    owner = app.test_client()
    log_in(owner, email)
    post_security(owner, "/account/email", **{"email-email": taken, "email-password": PASSWORD})
    link = link_in(inbox.latest(taken), "/account/email/confirm")
    path = link[link.index("/account") :]
    page = owner.get(path)
    token = re.search(r'name="token" type="hidden" value="([^"]+)"', page.text).group(1)
    refused = owner.post(
        "/account/email/confirm", data={"csrf_token": csrf_token(page.text), "token": token}
    )
    assert refused.status_code == 409
    assert log_in(app.test_client(), email).status_code == 303
    assert log_in(app.test_client(), taken).status_code == 303


def test_sessions_are_listed_and_ended_one_or_all_others(app: Flask) -> None:
    email = make_verified(app)
    phone, laptop, owner = app.test_client(), app.test_client(), app.test_client()
    for browser in (phone, laptop, owner):
        log_in(browser, email)
    page = owner.get(SECURITY, headers={"User-Agent": "Test browser"}).text
    ids = re.findall(r'name="session" value="([0-9a-f]{64})"', page)
    assert len(ids) == 3 and "(this browser)" in page
    ended = post_security(owner, "/account/sessions/end", session=ids[-1])  # the oldest: phone
    assert ended.status_code == 303
    assert phone.get("/account").status_code == 302
    assert laptop.get("/account").status_code == 200
    assert post_security(owner, "/account/sessions/end", session="others").status_code == 303
    assert laptop.get("/account").status_code == 302
    assert owner.get("/account").status_code == 200
    bad = post_security(owner, "/account/sessions/end")
    assert bad.status_code == 400


def test_removing_an_apps_access_revokes_its_refresh_tokens(app: Flask) -> None:
    client, _ = register(app, first_party=True, public=True, name="Calendar <app>")
    email = make_verified(app)
    owner = app.test_client()
    log_in(owner, email)
    code, verifier = get_code(owner, client)
    refresh_token = redeem(owner, client, code, verifier).json["refresh_token"]
    page = owner.get(SECURITY).text
    assert html.escape("Calendar <app>") in page and "Calendar <app>" not in page
    assert post_security(owner, "/account/apps/revoke", client="other").status_code == 404
    done = post_security(owner, "/account/apps/revoke", client=client.client_id)
    assert done.status_code == 303
    assert refresh(owner, client, refresh_token).json["error"] == "invalid_grant"
    assert "No app keeps you signed in" in owner.get(SECURITY).text


def test_deleting_the_account_needs_the_password_and_ends_everything(
    app: Flask, inbox: Inbox
) -> None:
    client, _ = register(app, first_party=True, public=True)
    email = make_verified(app)
    owner = app.test_client()
    log_in(owner, email)
    enrol(owner)
    with app.app_context():
        user_id = users.find_user(app.extensions["db"], email).id
    code, verifier = get_code(owner, client)
    refresh_token = redeem(owner, client, code, verifier).json["refresh_token"]
    wrong = post_security(owner, "/account/delete", **{"delete-password": "nope"})
    assert wrong.status_code == 400
    assert log_in(app.test_client(), email).status_code == 303, "nothing deleted"
    done = post_security(owner, "/account/delete", **{"delete-password": PASSWORD})
    assert done.status_code == 200 and "is deleted" in done.text
    assert owner.get("/account").status_code == 302
    assert refresh(owner, client, refresh_token).json["error"] == "invalid_grant"
    assert log_in(app.test_client(), email).status_code == 401
    with app.app_context():
        assert users.find_user(app.extensions["db"], email) is None
    # Nothing of the account is left behind (SQLite enforces no cascades).
    with app.extensions["db"].connect() as conn:
        for table in (login_sessions, totp_credentials, recovery_codes, passkeys, account_links):
            left = select(func.count()).select_from(table).where(table.c.user_id == user_id)
            assert conn.execute(left).scalar_one() == 0, table.name
    assert inbox.latest(email)["Subject"] == "Your account was deleted"


def test_password_confirmations_are_throttled(app: Flask) -> None:
    email = make_verified(app)
    owner = app.test_client()
    log_in(owner, email)
    for _ in range(5):
        assert (
            post_security(owner, "/account/delete", **{"delete-password": "guess"}).status_code
            == 400
        )
    throttled = post_security(owner, "/account/delete", **{"delete-password": PASSWORD})
    assert throttled.status_code == 429
    assert log_in(app.test_client(), email).status_code == 303, "not deleted"


def test_the_security_pages_need_a_login_and_a_csrf_token(app: Flask) -> None:
    stranger = app.test_client()
    assert stranger.get(SECURITY).headers["Location"].startswith("/login")
    assert stranger.post("/account/delete").status_code == 400  # no CSRF token
    email = make_verified(app)
    owner = app.test_client()
    log_in(owner, email)
    assert owner.post("/account/delete", data={"delete-password": PASSWORD}).status_code == 400
    assert log_in(app.test_client(), email).status_code == 303


# -- passkeys: what the endpoints say to what is not a passkey ---------------------------


def json_post(browser: FlaskClient, path: str, body: object, page: str = "/login"):
    token = csrf_token(browser.get(page).text)
    return browser.post(path, json=body, headers={"X-CSRFToken": token})


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"credential": None},
        {"credential": "not json"},
        {"credential": {"id": "x", "rawId": "x", "response": {}, "type": "public-key"}},
        {"credential": {"id": 1}},
        [],
        "text",
    ],
)
def test_a_passkey_sign_in_refuses_what_is_not_an_assertion(app: Flask, body: object) -> None:
    browser = app.test_client()
    options = json_post(browser, "/login/passkey/options", {})
    assert options.status_code == 200
    assert options.json["userVerification"] == "required"
    assert options.json["rpId"] == urlsplit(app.config["ISSUER"].issuer_url).hostname
    answer = json_post(browser, "/login/passkey", body)
    assert answer.status_code in (400, 401) and "error" in answer.json
    assert browser.get("/account").status_code == 302


def test_a_passkey_challenge_works_once_and_registration_needs_a_login(app: Flask) -> None:
    browser = app.test_client()
    assert json_post(browser, "/login/passkey", {"credential": {}}).status_code == 400
    assert json_post(browser, "/account/passkeys/options", {}).status_code == 401
    assert json_post(browser, "/account/passkeys", {"credential": {}}).status_code == 401
    assert browser.post("/login/passkey/options").status_code == 400, "no CSRF token"


def test_a_replayed_cookie_does_not_bring_a_spent_challenge_back(app: Flask) -> None:
    """The challenge is spent in the database, not only in the cookie: an answer
    replayed with the cookie it first came with finds no challenge."""
    browser = app.test_client()
    assert json_post(browser, "/login/passkey/options", {}).status_code == 200
    kept = browser.get_cookie("issuer_session").value
    first = json_post(browser, "/login/passkey", {"credential": {}})
    assert first.status_code == 401 and "did not sign you in" in first.json["error"]
    browser.set_cookie("issuer_session", kept)
    replayed = json_post(browser, "/login/passkey", {"credential": {}})
    assert replayed.status_code == 400 and "Start again" in replayed.json["error"]


@pytest.mark.parametrize("credential", [None, 1, [], "x", {}])
def test_adding_a_passkey_needs_the_password_and_an_attestation(
    app: Flask, credential: object
) -> None:
    """Whoever holds only the session cannot add a way in; what is no attestation is
    a 400, never a 500."""
    email = make_verified(app)
    owner = app.test_client()
    log_in(owner, email)
    for password in ({}, {"password": "not it"}, {"password": 5}):
        refused = json_post(owner, "/account/passkeys/options", password, SECURITY)
        assert refused.status_code == 403 and "not your current password" in refused.json["error"]
    options = json_post(owner, "/account/passkeys/options", {"password": PASSWORD}, SECURITY)
    assert (
        options.status_code == 200
        and options.json["authenticatorSelection"]["userVerification"] == "required"
    )
    answer = json_post(owner, "/account/passkeys", {"credential": credential}, SECURITY)
    assert answer.status_code == 400 and "error" in answer.json
    with app.app_context():
        assert (
            app.extensions["db"]
            .connect()
            .execute(select(func.count()).select_from(passkeys))
            .scalar()
            == 0
        )
