"""Login, sign-up and log-out pages through Flask's test client, as an attacker would."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Callable
from urllib.parse import quote, urlsplit

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from issuer import accounts, create_app
from issuer.accounts import passwords, users
from issuer.accounts.models import users as users_table
from issuer.config import Config
from tests.support.mail import Inbox, link_in

PASSWORD = "correct horse battery"
ATTACKER = "198.51.100.66"


@pytest.fixture
def app(make_issuer_app: Callable[..., Flask]) -> Flask:
    return make_issuer_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def ada(app: Flask) -> users.User:
    return users.create_user(app.extensions["db"], "ada@example.com", PASSWORD, {"team": "admin"})


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def login(
    client: FlaskClient,
    email: str,
    password: str,
    next_url: str | None = None,
    address: str = "127.0.0.1",
):
    query = f"?next={quote(next_url, safe='')}" if next_url is not None else ""
    environ = {"REMOTE_ADDR": address}
    token = csrf_token(client.get(f"/login{query}", environ_base=environ).text)
    return client.post(
        f"/login{query}",
        data={"csrf_token": token, "email": email, "password": password},
        environ_base=environ,
    )


def signup(client: FlaskClient, email: str, password: str, confirm: str | None = None):
    token = csrf_token(client.get("/signup").text)
    return client.post(
        "/signup",
        data={
            "csrf_token": token,
            "email": email,
            "password": password,
            "confirm": password if confirm is None else confirm,
        },
    )


def logged_in_email(client: FlaskClient) -> str | None:
    response = client.get("/account")
    if response.status_code == 302:
        return None
    assert response.status_code == 200
    return re.search(r"<dt>Email</dt><dd>([^<]+)</dd>", response.text).group(1)


def count_users(app: Flask) -> int:
    with app.extensions["db"].connect() as conn:
        return conn.execute(select(func.count()).select_from(users_table)).scalar_one()


def session_cookie(client: FlaskClient) -> str | None:
    cookie = client.get_cookie("issuer_session")
    return cookie.value if cookie else None


# --- happy paths ------------------------------------------------------------


def confirm_by_mail(client: FlaskClient, inbox: Inbox, email: str, after: int = 0):
    """Open the newest verification link mailed to `email` and press its button."""
    link = local(link_in(inbox.latest(email, after), "/verify-email"))
    page = client.get(link)
    assert page.status_code == 200, page.text
    token = re.search(r'name="token" type="hidden" value="([^"]+)"', page.text).group(1)
    return client.post("/verify-email", data={"csrf_token": csrf_token(page.text), "token": token})


def local(url: str) -> str:
    """An absolute link of ours (built from ISSUER_URL) as the test client's path."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_signup_mails_a_link_that_signs_in_and_logout_logs_out(
    app: Flask, client: FlaskClient, inbox: Inbox
) -> None:
    before = inbox.count("grace@example.com")
    response = signup(client, "Grace@Example.com", PASSWORD)
    assert response.status_code == 200
    assert "Check your email" in response.text and "grace@example.com" in response.text
    assert logged_in_email(client) is None, "not signed in before the address is proven"
    mail = inbox.latest("grace@example.com", before)
    assert mail["Subject"] == "Confirm your email address"
    assert link_in(mail, "/verify-email").startswith("http://localhost:8001/verify-email?token=")
    response = confirm_by_mail(client, inbox, "grace@example.com", before)
    assert response.status_code == 303
    assert response.headers["Location"] == "/account"
    assert logged_in_email(client) == "grace@example.com"
    assert ">yes<" in client.get("/account").text

    account = client.get("/account")
    response = client.post("/logout", data={"csrf_token": csrf_token(account.text)})
    assert response.status_code == 303
    assert response.headers["Location"] == "/login"
    assert logged_in_email(client) is None


def test_login_returns_to_the_authorize_url_with_its_query(
    client: FlaskClient, ada: users.User
) -> None:
    target = "/authorize?response_type=code&client_id=todo&state=a%2Bb&scope=openid+email"
    response = login(client, "ADA@example.com", PASSWORD, next_url=target)
    assert response.status_code == 303
    assert response.headers["Location"] == target


def test_signup_from_the_login_page_keeps_next(client: FlaskClient, inbox: Inbox) -> None:
    before = inbox.count("keeps-next@example.com")
    target = "/authorize?client_id=todo&state=xyz"
    login_page = client.get(f"/login?next={quote(target, safe='')}").text
    signup_link = re.search(r'href="(/signup\?next=[^"]+)"', login_page).group(1)
    form_page = client.get(signup_link.replace("&amp;", "&")).text
    action = re.search(r'<form method="post" action="([^"]+)"', form_page).group(1)
    response = client.post(
        action.replace("&amp;", "&"),
        data={
            "csrf_token": csrf_token(form_page),
            "email": "keeps-next@example.com",
            "password": PASSWORD,
            "confirm": PASSWORD,
        },
    )
    assert response.status_code == 200
    response = confirm_by_mail(client, inbox, "keeps-next@example.com", before)
    assert response.status_code == 303
    assert response.headers["Location"] == target


def test_login_url_round_trip(app: Flask, client: FlaskClient, ada: users.User) -> None:
    target = "/authorize?client_id=todo&redirect_uri=http%3A%2F%2F127.0.0.1%3A8000%2Fcb&state=x"
    with app.test_request_context(target):
        url = accounts.login_url("http://localhost" + target)
        assert url == accounts.login_url(target)
        assert accounts.current_user() is None
    token = csrf_token(client.get(url).text)
    response = client.post(
        url, data={"csrf_token": token, "email": ada.email, "password": PASSWORD}
    )
    assert response.headers["Location"] == target


def test_public_api_inside_a_request(app: Flask, client: FlaskClient, ada: users.User) -> None:
    login(client, ada.email, PASSWORD)
    with client:
        client.get("/account")
        assert accounts.current_user() == ada
        assert accounts.current_user().claims == {"team": "admin"}
        assert isinstance(accounts.authenticated_at(), int)
        assert accounts.get_user(ada.id) == ada
        assert accounts.get_user("no-such-id") is None
        accounts.logout_user()
        assert accounts.current_user() is None


# --- open redirects ---------------------------------------------------------


@pytest.mark.parametrize(
    "evil",
    [
        "https://evil.example/",
        "//evil.example/path",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "evil.example",
        "",
    ],
)
def test_open_redirects_in_next_are_ignored(
    client: FlaskClient, ada: users.User, evil: str
) -> None:
    response = login(client, ada.email, PASSWORD, next_url=evil)
    assert response.status_code == 303
    assert response.headers["Location"] == "/account"


def test_logout_next_is_local_only(client: FlaskClient, ada: users.User) -> None:
    login(client, ada.email, PASSWORD)
    token = csrf_token(client.get("/account").text)
    response = client.post("/logout?next=//evil.example", data={"csrf_token": token})
    assert response.headers["Location"] == "/login"


# --- CSRF -------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "forged-token", "ImFiYyI.awOfYA.forged"])
def test_forms_without_a_valid_csrf_token_are_refused(
    app: Flask, client: FlaskClient, ada: users.User, token: str | None
) -> None:
    extra = {} if token is None else {"csrf_token": token}
    response = client.post("/login", data={"email": ada.email, "password": PASSWORD, **extra})
    assert response.status_code == 400
    assert "form has expired" in response.text
    assert logged_in_email(client) is None

    response = client.post(
        "/signup",
        data={"email": "new@example.com", "password": PASSWORD, "confirm": PASSWORD, **extra},
    )
    assert response.status_code == 400
    assert count_users(app) == 1


def test_logout_needs_a_csrf_token(client: FlaskClient, ada: users.User) -> None:
    login(client, ada.email, PASSWORD)
    assert client.post("/logout").status_code == 400
    assert logged_in_email(client) == ada.email


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_logout_is_post_only(client: FlaskClient, ada: users.User, method: str) -> None:
    """A link, an image, a prefetch or a HEAD probe cannot log anyone out."""
    login(client, ada.email, PASSWORD)
    response = client.open("/logout", method=method)
    assert response.status_code == 405
    assert logged_in_email(client) == ada.email


def test_csrf_token_of_another_session_is_refused(
    app: Flask, client: FlaskClient, ada: users.User
) -> None:
    attacker = app.test_client()
    token = csrf_token(attacker.get("/login").text)
    client.get("/login")
    response = client.post(
        "/login", data={"csrf_token": token, "email": ada.email, "password": PASSWORD}
    )
    assert response.status_code == 400


# --- enumeration ------------------------------------------------------------


def _masked(html: str, email: str) -> str:
    html = re.sub(r'name="csrf_token" type="hidden" value="[^"]+"', "CSRF", html)
    return html.replace(email, "EMAIL")


def test_unknown_user_and_wrong_password_look_identical(
    app: Flask, ada: users.User, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[str] = []
    real = passwords.hasher

    class CountingHasher(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            verified.append(str(hash).split("$")[3])
            return super().verify(hash, password)

    monkeypatch.setattr(
        passwords,
        "hasher",
        CountingHasher(
            time_cost=real.time_cost,
            memory_cost=real.memory_cost,
            parallelism=real.parallelism,
            type=real.type,
        ),
    )
    wrong = login(app.test_client(), ada.email, "not the password")
    unknown = login(app.test_client(), "nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert _masked(wrong.text, ada.email) == _masked(unknown.text, "nobody@example.com")
    assert "Incorrect email or password." in wrong.text
    assert set(wrong.headers.keys()) == set(unknown.headers.keys())
    # Both paths ran one full argon2id verification with the same parameters.
    assert verified == ["m=19456,t=2,p=1", "m=19456,t=2,p=1"]


def test_disabled_users_cannot_log_in_and_lose_their_session(
    app: Flask, client: FlaskClient, ada: users.User
) -> None:
    login(client, ada.email, PASSWORD)
    assert logged_in_email(client) == ada.email
    users.set_disabled(app.extensions["db"], ada.email, True)
    assert logged_in_email(client) is None

    response = login(app.test_client(), ada.email, PASSWORD)
    assert response.status_code == 401
    assert "Incorrect email or password." in response.text


# --- throttling -------------------------------------------------------------


def test_account_is_throttled_after_five_failures(
    app: Flask, ada: users.User, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(5):
        response = login(app.test_client(), ada.email, f"guess-{i}", address=f"203.0.113.{i}")
        assert response.status_code == 401
    # From yet another address, even with the right password: refused, unverified.
    with caplog.at_level(logging.INFO, logger="issuer.audit"):
        caplog.clear()  # the failures above, when an earlier test left the logger at INFO
        response = login(app.test_client(), ada.email, PASSWORD, address="203.0.113.200")
    assert response.status_code == 429
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= 15 * 60
    assert "Too many attempts" in response.text
    assert "15 minutes" in response.text
    assert [json.loads(r.message)["event"] for r in caplog.records] == ["login.throttled"]
    # Other accounts are not affected.
    grace = users.create_user(app.extensions["db"], "grace@example.com", PASSWORD)
    assert login(app.test_client(), grace.email, PASSWORD).status_code == 303


def test_address_is_throttled_across_accounts(app: Flask, ada: users.User) -> None:
    for i in range(20):
        response = login(app.test_client(), f"victim{i}@example.com", "guess", address=ATTACKER)
        assert response.status_code == 401
    response = login(app.test_client(), ada.email, PASSWORD, address=ATTACKER)
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert login(app.test_client(), ada.email, PASSWORD, address="192.0.2.1").status_code == 303


def test_ipv6_neighbours_share_an_address_budget(make_issuer_app: Callable[..., Flask]) -> None:
    app = make_issuer_app(login_max_failures_per_address=2)
    for host in ("2001:db8:5::1", "2001:db8:5::2"):
        assert login(app.test_client(), "x@example.com", "guess", address=host).status_code == 401
    response = login(app.test_client(), "y@example.com", "guess", address="2001:db8:5::ffff")
    assert response.status_code == 429


def test_forged_forwarded_for_does_not_evade_the_address_limit(
    make_issuer_app: Callable[..., Flask],
) -> None:
    app = make_issuer_app(login_max_failures_per_address=2)
    for fake in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        client = app.test_client()
        token = csrf_token(client.get("/login").text)
        response = client.post(
            "/login",
            data={"csrf_token": token, "email": f"x@{fake}.example", "password": "guess"},
            headers={"X-Forwarded-For": fake},
            environ_base={"REMOTE_ADDR": ATTACKER},
        )
    assert response.status_code == 429


def test_trusted_proxy_supplies_the_client_address(make_issuer_app: Callable[..., Flask]) -> None:
    app = make_issuer_app(login_max_failures_per_address=2, trusted_proxies=1)

    def attempt(forwarded_for: str) -> int:
        client = app.test_client()
        token = csrf_token(client.get("/login").text)
        return client.post(
            "/login",
            data={"csrf_token": token, "email": "x@example.com", "password": "guess"},
            headers={"X-Forwarded-For": forwarded_for},
            environ_base={"REMOTE_ADDR": "127.0.0.1"},  # the proxy
        ).status_code

    # The client's own prefix is ignored: only the proxy's last entry counts.
    assert [attempt(f"10.9.9.{i}, {ATTACKER}") for i in range(3)] == [401, 401, 429]
    assert attempt("192.0.2.55") == 401


def test_successful_login_resets_the_account_count(app: Flask, ada: users.User) -> None:
    for _ in range(4):
        login(app.test_client(), ada.email, "guess")
    assert login(app.test_client(), ada.email, PASSWORD).status_code == 303
    for _ in range(4):
        assert login(app.test_client(), ada.email, "guess").status_code == 401


# --- sessions ---------------------------------------------------------------


def test_login_starts_a_new_session(app: Flask, client: FlaskClient, ada: users.User) -> None:
    """Session fixation: a cookie planted before login must not become authenticated."""
    client.get("/login")
    planted = session_cookie(client)
    login(client, ada.email, PASSWORD)
    assert session_cookie(client) != planted

    attacker = app.test_client()
    attacker.set_cookie("issuer_session", planted)
    assert logged_in_email(attacker) is None


def test_each_login_gets_its_own_session_and_logout_revokes_copies(
    app: Flask, client: FlaskClient, ada: users.User
) -> None:
    login(client, ada.email, PASSWORD)
    first = session_cookie(client)
    login(client, ada.email, PASSWORD)
    second = session_cookie(client)
    assert first != second

    earlier = app.test_client()
    earlier.set_cookie("issuer_session", first)
    assert logged_in_email(earlier) is None, "a new login replaces the browser's old session"

    stolen = app.test_client()
    stolen.set_cookie("issuer_session", second)
    assert logged_in_email(stolen) == ada.email
    client.post("/logout", data={"csrf_token": csrf_token(client.get("/account").text)})
    assert logged_in_email(stolen) is None, "a copied cookie must die with the logout"


def test_session_cookie_attributes(app: Flask, client: FlaskClient, ada: users.User) -> None:
    response = login(client, ada.email, PASSWORD)
    cookies = {c.split("=", 1)[0]: c for c in response.headers.getlist("Set-Cookie")}
    assert set(cookies) == {"issuer_session", "issuer_device"}
    for set_cookie in cookies.values():
        assert "HttpOnly" in set_cookie
        assert "SameSite=Lax" in set_cookie
        assert "Secure" not in set_cookie


def test_session_cookie_is_secure_behind_https(make_issuer_app: Callable[..., Flask]) -> None:
    app = make_issuer_app(issuer_url="https://id.example")
    response = app.test_client().get("/login", base_url="https://id.example")
    assert "; Secure" in response.headers["Set-Cookie"]


def test_secret_key_is_generated_once_and_private(issuer_config: Config) -> None:
    config = dataclasses.replace(issuer_config, secret_key=None)
    first = create_app(config).config["SECRET_KEY"]
    second = create_app(config).config["SECRET_KEY"]
    key_file = config.data_dir / "issuer-secret-key"
    assert first == second == key_file.read_text()
    assert len(first) >= 32
    assert key_file.stat().st_mode & 0o777 == 0o600


# --- bad input --------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({}, "Enter your email address."),
        ({"email": "ada@example.com"}, "Enter your password."),
        ({"password": PASSWORD}, "Enter your email address."),
        ({"email": "not-an-email", "password": PASSWORD}, "Enter a valid email address"),
        ({"email": "a" * 300 + "@example.com", "password": PASSWORD}, "at most 254 characters"),
        ({"email": "ada@example.com", "password": "x" * 100_000}, "at most 256 characters"),
    ],
)
def test_bad_login_input_is_a_friendly_400(
    app: Flask, client: FlaskClient, ada: users.User, form: dict, message: str
) -> None:
    token = csrf_token(client.get("/login").text)
    response = client.post("/login", data={"csrf_token": token, **form})
    assert response.status_code == 400
    assert message in response.text
    assert 'role="alert"' in response.text
    # Malformed input is not a guess: it spends no throttle budget.
    for _ in range(5):
        client.post("/login", data={"csrf_token": token, **form})
    assert login(app.test_client(), ada.email, PASSWORD).status_code == 303


@pytest.mark.parametrize(
    ("email", "password", "confirm", "message"),
    [
        ("", PASSWORD, PASSWORD, "Enter your email address."),
        ("new@example", PASSWORD, PASSWORD, "Enter a valid email address"),
        ("new@example.com", "short", "short", "must be 8 to 256 characters"),
        ("new@example.com", "x" * 257, "x" * 257, "must be 8 to 256 characters"),
        ("new@example.com", PASSWORD, PASSWORD + "!", "do not match"),
        ("new@example.com", "", "", "Choose a password."),
        ("x" * 255 + "@example.com", PASSWORD, PASSWORD, "at most 254 characters"),
    ],
)
def test_bad_signup_input_is_a_friendly_400_and_writes_nothing(
    app: Flask, client: FlaskClient, email: str, password: str, confirm: str, message: str
) -> None:
    response = signup(client, email, password, confirm)
    assert response.status_code == 400
    assert message in response.text
    assert count_users(app) == 0
    assert logged_in_email(client) is None


def test_a_taken_address_gets_the_same_answer_and_its_owner_a_mail(
    app: Flask, client: FlaskClient, ada: users.User, inbox: Inbox
) -> None:
    before = inbox.count("ada@example.com")
    taken = signup(client, "Ada@Example.com", "another password")
    new = signup(app.test_client(), "not-ada@example.com", "another password")
    assert taken.status_code == new.status_code == 200

    def words(page: str) -> str:
        return re.sub(r'value="[^"]+"|ada@example\.com|not-ada@example\.com', "", page)

    assert words(taken.text) == words(new.text)
    assert count_users(app) == 2
    assert logged_in_email(client) is None
    mail = inbox.latest("ada@example.com", before)
    assert mail["Subject"] == "Someone tried to sign up with your email address"
    assert "/reset-password?token=" in link_in(mail, "/reset-password")
    # The password of the account is unchanged.
    assert users.authenticate(app.extensions["db"], "ada@example.com", PASSWORD).user is not None


def test_signup_can_be_switched_off(make_issuer_app: Callable[..., Flask]) -> None:
    app = make_issuer_app(signup_enabled=False)
    client = app.test_client()
    assert client.get("/signup").status_code == 403
    token = csrf_token(client.get("/login").text)
    response = client.post(
        "/signup",
        data={
            "csrf_token": token,
            "email": "n@example.com",
            "password": PASSWORD,
            "confirm": PASSWORD,
        },
    )
    assert response.status_code == 403
    assert count_users(app) == 0
    assert "/signup" not in client.get("/login").text


def test_audit_log_records_logins_without_secrets(
    app: Flask, ada: users.User, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="issuer.audit"):
        login(app.test_client(), ada.email, "wrong guess")
        login(app.test_client(), "nobody@example.com", "wrong guess")
        login(app.test_client(), ada.email, PASSWORD)
        signup(app.test_client(), "grace@example.com", PASSWORD)
    events = [json.loads(r.message) for r in caplog.records]
    assert [(e["event"], e.get("reason")) for e in events][:4] == [
        ("login.failed", "bad_password"),
        ("login.failed", "unknown_user"),
        ("login", None),
        ("signup", None),
    ]
    assert events[0]["user_id"] == ada.id
    assert events[1]["user_id"] is None
    text = caplog.text
    assert "wrong guess" not in text and PASSWORD not in text
    assert "nobody@example.com" not in text


def test_pages_are_not_cached_or_framed(client: FlaskClient) -> None:
    response = client.get("/login")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.text) == (200, "ok\n")


def test_a_login_session_past_its_expiry_is_not_accepted(
    app: Flask, client: FlaskClient, ada: users.User
) -> None:
    """The cookie is signed and still within Flask's lifetime: only the server-side
    expiry ends it (as after ISSUER_SESSION_LIFETIME)."""
    from issuer.accounts.models import login_sessions

    login(client, ada.email, PASSWORD)
    assert logged_in_email(client) == ada.email
    with app.extensions["db"].begin() as conn:
        conn.execute(login_sessions.update().values(expires_at=0))
    assert logged_in_email(client) is None


def test_a_session_ends_when_its_user_is_disabled_behind_its_back(
    app: Flask, client: FlaskClient, ada: users.User
) -> None:
    """Disabled in the table directly (as when a login races `users disable`, whose
    session sweep ran first): the session still ends."""
    login(client, ada.email, PASSWORD)
    assert logged_in_email(client) == ada.email
    with app.extensions["db"].begin() as conn:
        conn.execute(users_table.update().values(disabled=True))
    assert logged_in_email(client) is None
