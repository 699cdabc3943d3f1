"""Email verification and password reset, as their owner and as an attacker: every
link mailed over real SMTP, read from the Maildir, used through the test client."""

from __future__ import annotations

import logging
import re
import statistics
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import update

from issuer.accounts import users
from issuer.accounts.models import account_links
from issuer.db import secret_digest
from tests.issuer.account_pages import (
    NEW_PASSWORD,
    claims_of,
    forgot,
    local,
    log_in,
    post_page_form,
    sign_up,
    unique,
)
from tests.issuer.oauth_flows import (
    PASSWORD,
    authorize_params,
    csrf_token,
    get_code,
    pkce_pair,
    redeem,
    redirect_params,
    refresh,
    register,
)
from tests.support.mail import Inbox, link_in, text_of

# -- email verification -------------------------------------------------------------


def test_an_unverified_account_confirms_by_mail_and_its_sign_in_goes_on(
    app: Flask, inbox: Inbox
) -> None:
    """Sign-up from an authorization request: the link brings the browser back to it,
    and the tokens then say `email_verified: true`."""
    client, _ = register(app, first_party=True, public=True)
    email = unique("verify")
    browser = app.test_client()
    verifier, challenge = pkce_pair()
    params = authorize_params(client, challenge)
    authorize = browser.get("/authorize", query_string=params)
    assert authorize.status_code == 302 and "/login?next=" in authorize.headers["Location"]
    next_url = urlsplit(authorize.headers["Location"]).query.removeprefix("next=")
    assert sign_up(browser, email, next_url).status_code == 200
    link = local(link_in(inbox.latest(email), "/verify-email"))
    done = post_page_form(browser, link, "/verify-email")
    assert done.status_code == 303 and done.headers["Location"].startswith("/authorize?")
    code = redirect_params(browser.get(done.headers["Location"]))["code"]
    tokens = redeem(browser, client, code, verifier).json
    assert claims_of(tokens["id_token"])["email_verified"] is True
    userinfo = browser.get(
        "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert userinfo.json["email_verified"] is True


@pytest.mark.parametrize("taken", [False, True])
def test_the_link_signs_in_only_the_browser_that_signed_up(
    app: Flask, inbox: Inbox, taken: bool
) -> None:
    """Whoever reads the mailbox elsewhere (or a victim sent an attacker's own link)
    confirms the address but is not signed in: the link proves a mailbox, not a
    password, and would skip a second factor. A taken address's sign-up leaves the
    same kind of mark in the cookie, for nobody."""
    email = unique("mailbox")
    if taken:
        with app.app_context():
            users.create_user(app.extensions["db"], email, PASSWORD)
    signing_up = app.test_client()
    assert sign_up(signing_up, email).status_code == 200
    cookie = signing_up.get_cookie("issuer_session")
    assert cookie is not None
    session = app.session_interface.get_signing_serializer(app).loads(cookie.value)
    assert set(session) == {"csrf_token", "signed_up"} and len(session["signed_up"]) == 72
    if taken:
        assert "/verify-email" not in text_of(inbox.latest(email))
        return
    link = local(link_in(inbox.latest(email), "/verify-email"))
    elsewhere = app.test_client()
    done = post_page_form(elsewhere, link, "/verify-email")
    assert done.status_code == 303
    assert (
        done.headers["Location"].startswith("/login?")
        and "changed=email" in done.headers["Location"]
    )
    assert elsewhere.get("/account").status_code == 302
    assert "Your email address is confirmed" in elsewhere.get(done.headers["Location"]).text
    with app.app_context():
        assert users.find_user(app.extensions["db"], email).email_verified
    # The browser that signed up is still not signed in by a link used elsewhere...
    assert signing_up.get("/account").status_code == 302
    # ... and its password works.
    assert log_in(signing_up, email).status_code == 303


def test_a_logged_in_unverified_user_is_asked_to_confirm_before_an_app_signs_them_in(
    app: Flask, inbox: Inbox
) -> None:
    client, _ = register(app, first_party=True, public=True)
    email = unique("needed")
    with app.app_context():
        users.create_user(app.extensions["db"], email, PASSWORD)
    browser = app.test_client()
    assert log_in(browser, email).status_code == 303
    _, challenge = pkce_pair()
    params = authorize_params(client, challenge)
    waiting = browser.get("/authorize", query_string=params)
    assert waiting.status_code == 302
    assert waiting.headers["Location"].startswith("/verify-email/needed?next=")
    page = browser.get(waiting.headers["Location"])
    assert "Confirm your email first" in page.text
    action = re.search(r'action="(/verify-email/resend[^"]*)"', page.text).group(1)
    sent = browser.post(action.replace("&amp;", "&"), data={"csrf_token": csrf_token(page.text)})
    assert sent.status_code == 200 and "We sent a new link" in sent.text
    done = post_page_form(
        browser, local(link_in(inbox.latest(email), "/verify-email")), "/verify-email"
    )
    assert done.status_code == 303
    assert "code" in redirect_params(browser.get(done.headers["Location"]))
    # prompt=none never shows a page: an unverified user is `interaction_required`.
    with app.app_context():
        users.set_email_verified(app.extensions["db"], email, False)
    silent = redirect_params(browser.get("/authorize", query_string={**params, "prompt": "none"}))
    assert silent["error"] == "interaction_required"


def test_without_the_requirement_unverified_users_sign_in_and_tokens_say_so(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(require_verified_email=False)
    client, _ = register(app, first_party=True, public=True)
    email = unique("relaxed")
    with app.app_context():
        users.create_user(app.extensions["db"], email, PASSWORD)
    browser = app.test_client()
    log_in(browser, email)
    code, verifier = get_code(browser, client)
    tokens = redeem(browser, client, code, verifier).json
    assert claims_of(tokens["id_token"])["email_verified"] is False


def test_a_verification_link_works_once_only_when_posted_and_never_tampered(
    app: Flask, inbox: Inbox
) -> None:
    email = unique("once")
    sign_up(app.test_client(), email)
    link = local(link_in(inbox.latest(email), "/verify-email"))
    browser = app.test_client()
    for _ in range(3):  # mail scanners and previews open links: opening uses nothing up
        assert browser.get(link).status_code == 200
    token = link.split("token=", 1)[1]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    page = browser.get(link)
    for bad in (tampered, "", "x" * 500):
        refused = browser.post(
            "/verify-email", data={"csrf_token": csrf_token(page.text), "token": bad}
        )
        assert refused.status_code == 400 and "expired or was already used" in refused.text
    assert post_page_form(browser, link, "/verify-email").status_code == 303
    again = app.test_client().get(link)
    assert again.status_code == 400 and "expired or was already used" in again.text
    with app.app_context():
        assert users.find_user(app.extensions["db"], email).email_verified


def test_an_expired_link_and_an_older_link_are_refused(app: Flask, inbox: Inbox) -> None:
    email = unique("expired")
    sign_up(app.test_client(), email)
    first = local(link_in(inbox.latest(email), "/verify-email"))
    with app.app_context():
        user = users.find_user(app.extensions["db"], email)
    browser = app.test_client()
    log_in(browser, email)
    page = browser.get("/account")
    browser.post("/verify-email/resend", data={"csrf_token": csrf_token(page.text)})
    second = local(link_in(inbox.latest(email, after=1), "/verify-email"))
    assert browser.get(first).status_code == 400, "only the newest link works"
    token = second.split("token=", 1)[1]
    with app.extensions["db"].begin() as conn:
        conn.execute(
            update(account_links)
            .where(account_links.c.id == secret_digest(token))
            .values(expires_at=time.time() - 1)
        )
    assert browser.get(second).status_code == 400
    with app.app_context():
        assert not users.get_user(app.extensions["db"], user.id).email_verified


def test_links_name_the_issuers_url_whatever_host_the_request_named(
    app: Flask, inbox: Inbox
) -> None:
    email = unique("host")
    sign_up(app.test_client(), email, headers={"Host": "evil.example"})
    link = link_in(inbox.latest(email), "/verify-email")
    assert link.startswith(f"{app.config['ISSUER'].issuer_url}/verify-email?token=")
    assert "evil.example" not in text_of(inbox.latest(email))


def test_sign_ups_are_limited_per_address(make_app: Callable[..., Flask]) -> None:
    app = make_app(signup_max_per_address=2)
    browser = app.test_client()
    assert sign_up(browser, unique("flood")).status_code == 200
    assert sign_up(browser, unique("flood")).status_code == 200
    refused = sign_up(browser, unique("flood"))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 3000
    elsewhere = sign_up(browser, unique("flood"), environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert elsewhere.status_code == 200
    assert len(users.list_users(app.extensions["db"])) == 3


def test_signing_up_with_a_taken_address_takes_about_as_long(app: Flask, inbox: Inbox) -> None:
    """Nor does sign-up tell by its time: one password hash on either path, and the
    mail (a confirmation link, or "someone tried") goes out after the answer."""
    taken = unique("taken")
    with app.app_context():
        users.create_user(app.extensions["db"], taken, PASSWORD)
    timings: dict[str, list[float]] = {"taken": [], "new": []}
    for attempt in range(5):
        for kind, email in (("taken", taken), ("new", unique("new"))):
            address = {"REMOTE_ADDR": f"192.0.2.{10 * attempt + len(kind)}"}
            started = time.perf_counter()
            answer = sign_up(app.test_client(), email, environ_base=address)
            timings[kind].append(time.perf_counter() - started)
            assert answer.status_code == 200
    slower, faster = sorted(statistics.median(t) for t in timings.values())[::-1]
    assert slower < faster * 3 + 0.05, timings
    # Each try was told to the owner (five: the account's mail limit an hour).
    assert inbox.latest(taken, 4)["Subject"] == "Someone tried to sign up with your email address"


# -- password reset -----------------------------------------------------------------


def test_a_reset_ends_every_session_and_refresh_token_and_works_once(
    app: Flask, inbox: Inbox
) -> None:
    client, _ = register(app, first_party=True, public=True)
    email = unique("reset")
    with app.app_context():
        users.create_user(app.extensions["db"], email, PASSWORD, email_verified=True)
    elsewhere = app.test_client()  # another device, signed in with an app
    log_in(elsewhere, email)
    code, verifier = get_code(elsewhere, client)
    refresh_token = redeem(elsewhere, client, code, verifier).json["refresh_token"]

    browser = app.test_client()
    assert forgot(browser, email).status_code == 200
    mail = inbox.latest(email)
    assert mail["Subject"] == "Choose a new password"
    link = local(link_in(mail, "/reset-password"))
    short = post_page_form(browser, link, "/reset-password", password="short", confirm="short")
    assert short.status_code == 400 and "must be 8 to 256" in short.text
    done = post_page_form(
        browser, link, "/reset-password", password=NEW_PASSWORD, confirm=NEW_PASSWORD
    )  # the refused attempt did not use the link up
    assert done.status_code == 303 and "changed=password" in done.headers["Location"]
    assert "Your password was changed" in browser.get(done.headers["Location"]).text

    assert log_in(app.test_client(), email).status_code == 401
    assert log_in(app.test_client(), email, NEW_PASSWORD).status_code == 303
    assert elsewhere.get("/account").status_code == 302, "the other session ended"
    assert refresh(elsewhere, client, refresh_token).json["error"] == "invalid_grant"
    assert app.test_client().get(link).status_code == 400, "the link worked once"
    assert inbox.latest(email, after=1)["Subject"] == "Your password was changed"


def test_asking_for_a_reset_tells_nothing_about_the_address(
    app: Flask, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    known = unique("known")
    with app.app_context():
        users.create_user(app.extensions["db"], known, PASSWORD)
    unknown = unique("unknown")

    def page(email: str) -> tuple[int, str]:
        response = forgot(app.test_client(), email)
        return response.status_code, re.sub(r'value="[^"]+"', "", response.text.replace(email, ""))

    assert page(known) == page(unknown)
    assert inbox.latest(known)["Subject"] == "Choose a new password"
    assert inbox.count(unknown) == 0
    # Nor does the time it takes: the mail goes out after the answer.
    timings: dict[str, list[float]] = {known: [], unknown: []}
    for _ in range(5):
        for email in (known, unknown):
            started = time.perf_counter()
            forgot(app.test_client(), email, address=f"192.0.2.{len(timings[email]) + 1}")
            timings[email].append(time.perf_counter() - started)
    slower, faster = sorted(statistics.median(t) for t in timings.values())[::-1]
    assert slower < faster * 3 + 0.05, timings


def test_mail_to_one_account_and_requests_from_one_address_are_limited(
    make_app: Callable[..., Flask], inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(mail_max_per_account=2, mail_max_per_address=3)
    email = unique("bombed")
    with app.app_context():
        users.create_user(app.extensions["db"], email, PASSWORD)
    with caplog.at_level(logging.INFO, logger="issuer.audit"):
        for n in range(3):
            assert forgot(app.test_client(), email, address=f"192.0.2.{n}").status_code == 200
    inbox.latest(email, after=1)
    time.sleep(0.5)
    assert inbox.count(email) == 2, "the third mail to the account was not sent"
    assert '"event":"mail.skipped"' in caplog.text
    for _ in range(3):
        assert forgot(app.test_client(), unique("x"), address="198.51.100.9").status_code == 200
    refused = forgot(app.test_client(), unique("x"), address="198.51.100.9")
    assert refused.status_code == 429 and "Retry-After" in refused.headers


def test_a_reset_link_changes_only_its_own_account(app: Flask, inbox: Inbox) -> None:
    ada, bob = unique("ada"), unique("bob")
    with app.app_context():
        for email in (ada, bob):
            users.create_user(app.extensions["db"], email, PASSWORD)
    forgot(app.test_client(), ada)
    link = local(link_in(inbox.latest(ada), "/reset-password"))
    browser = app.test_client()
    log_in(browser, bob)  # signed in as Bob while using Ada's link
    done = post_page_form(
        browser, link, "/reset-password", password=NEW_PASSWORD, confirm=NEW_PASSWORD
    )
    assert done.status_code == 303
    engine = app.extensions["db"]
    assert users.authenticate(engine, ada, NEW_PASSWORD).user is not None
    assert users.authenticate(engine, bob, PASSWORD).user is not None


def test_a_verification_link_is_no_reset_link_nor_the_reverse(app: Flask, inbox: Inbox) -> None:
    email = unique("mixed")
    sign_up(app.test_client(), email)
    token = link_in(inbox.latest(email), "/verify-email").split("token=", 1)[1]
    assert app.test_client().get(f"/reset-password?token={token}").status_code == 400
    forgot(app.test_client(), email)
    reset = link_in(inbox.latest(email, after=1), "/reset-password").split("token=", 1)[1]
    assert app.test_client().get(f"/verify-email?token={reset}").status_code == 400


def test_the_sign_up_mark_skips_no_second_factor_set_up_since(app: Flask, inbox: Inbox) -> None:
    """Set up an authenticator in another browser after signing up: the link, opened in
    the browser that signed up, confirms the address but asks for the login (and so
    the code) instead of signing in."""
    from tests.issuer.test_account_security import enrol

    email = unique("factor")
    signing_up = app.test_client()
    assert sign_up(signing_up, email).status_code == 200
    elsewhere = app.test_client()
    assert log_in(elsewhere, email).status_code == 303
    enrol(elsewhere)
    link = local(link_in(inbox.latest(email), "/verify-email"))
    done = post_page_form(signing_up, link, "/verify-email")
    assert done.status_code == 303 and done.headers["Location"].startswith("/login?")
    assert signing_up.get("/account").status_code == 302
