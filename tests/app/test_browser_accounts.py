"""Accounts in a real headless Chromium, as a person uses them: a taken address at
sign-up, a forgotten password, an authenticator app with its recovery codes, and a
passkey held by Chromium's virtual authenticator (DevTools protocol `WebAuthn`).

Mail is read from the Maildir of the real local SMTP server the issuer sends to.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pyotp
import pytest
from playwright.sync_api import CDPSession, expect

from tests.app.browser import MakeUser, OpenPerson, Person
from tests.app.live import PASSWORD, Stack
from tests.support.mail import link_in, text_of

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a brand new passphrase for frank"


def open_security_page(someone: Person) -> None:
    someone.page.goto(f"{someone.stack.issuer_url}/account/security")
    someone.expect_heading("Account security")


def turn_on_authenticator(someone: Person) -> tuple[pyotp.TOTP, list[str]]:
    """Set up an authenticator app by typing the setup key shown as text (as a person
    whose phone cannot scan the QR code does); returns the app and the recovery codes."""
    page = someone.page
    open_security_page(someone)
    page.get_by_role("link", name="Set up an authenticator app").click()
    someone.expect_heading("Set up an authenticator app")
    expect(page.get_by_role("img", name="QR code of the setup key").locator("svg")).to_be_visible()
    key = page.get_by_test_id("setup-key").inner_text()
    authenticator = pyotp.TOTP(key.replace(" ", ""))
    page.get_by_label("Code from your authenticator app").fill(authenticator.now())
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Turn on").click()
    someone.expect_heading("Your recovery codes")
    codes = page.get_by_test_id("recovery-codes").locator("code").all_inner_texts()
    assert len(codes) == 10 and len(set(codes)) == 10, codes
    return authenticator, codes


def enter_code(someone: Person, code: str) -> None:
    page = someone.page
    expect(page).to_have_url(f"{someone.stack.issuer_url}/login/code")
    someone.expect_heading("Enter your code")
    page.get_by_label("Code from your authenticator app").fill(code)
    page.get_by_role("button", name="Continue").click()


def later_code(authenticator: pyotp.TOTP) -> str:
    """The code of the next 30 s step: the app's clock a little ahead, which the
    issuer tolerates, and never the step already used to turn the app on."""
    return authenticator.at(time.time() + authenticator.interval)


def wrong_code(authenticator: pyotp.TOTP) -> str:
    now = time.time()
    valid = {authenticator.at(now + drift) for drift in (-60, -30, 0, 30, 60)}
    return next(c for c in (f"{n:06d}" for n in range(0, 10**6, 7919)) if c not in valid)


@pytest.fixture
def authenticator_of(person: OpenPerson) -> Iterator[object]:
    """Give a person's page Chromium's virtual platform authenticator: resident keys
    and user verification (the device's lock, always passed)."""
    sessions: list[CDPSession] = []

    def attach(someone: Person) -> str:
        cdp = someone.page.context.new_cdp_session(someone.page)
        cdp.send("WebAuthn.enable", {"enableUI": False})
        added = cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )
        sessions.append(cdp)
        return added["authenticatorId"]

    yield attach
    for cdp in sessions:
        cdp.detach()


def test_sign_up_with_a_taken_address_tells_nothing_and_mails_its_owner(
    person: OpenPerson, stack: Stack, make_user: MakeUser
) -> None:
    owner = make_user("grace.taken@example.com")
    before = stack.inbox.count(owner)

    mallory = person()
    mallory.submit_sign_up(owner)  # the same "check your email" page as a new address

    mail = stack.inbox.latest(owner, before)
    assert mail["Subject"] == "Someone tried to sign up with your email address"
    assert "/reset-password?token=" in link_in(mail, "/reset-password")
    # Nobody got in, and the owner's password still works.
    mallory.page.goto(mallory.home)
    expect(mallory.page.get_by_test_id("user-email")).to_have_count(0)
    person().log_in(owner)


def test_forgotten_password_mail_sets_a_new_one_once_and_ends_other_sessions(
    person: OpenPerson, stack: Stack, make_user: MakeUser
) -> None:
    email = make_user("frank.forgot@example.com")
    laptop = person()
    laptop.log_in(email)  # still signed in elsewhere

    frank = person()
    page = frank.page
    page.goto(frank.home)
    page.get_by_role("link", name="Log in", exact=True).click()
    page.get_by_role("link", name="Forgot your password?").click()
    frank.expect_heading("Forgot your password?")
    before = stack.inbox.count(email)
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Send me a link").click()
    frank.expect_heading("Check your email")

    link = link_in(stack.inbox.latest(email, before), "/reset-password")
    page.goto(link)
    frank.expect_heading("Choose a new password")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set the new password").click()
    frank.expect_heading("Log in")
    expect(page.get_by_role("status")).to_have_text(
        "Your password was changed. Log in with the new one."
    )
    changed = stack.inbox.latest(email, before + 1)
    assert "password" in text_of(changed).lower()

    # The old password is refused; the new one signs Frank in to the app.
    frank.submit_password(email, PASSWORD)
    expect(page.get_by_role("alert")).to_contain_text("Incorrect email or password.")
    frank.log_in(email, NEW_PASSWORD)

    # The link worked once.
    page.goto(link)
    frank.expect_heading("This link cannot be used")

    # The other browser's session at the issuer ended with the reset.
    laptop.page.goto(f"{stack.issuer_url}/account")
    laptop.expect_password_form()


def test_authenticator_app_code_after_the_password_and_recovery_codes_once(
    person: OpenPerson, stack: Stack, make_user: MakeUser
) -> None:
    email = make_user("henry.totp@example.com")
    henry = person()
    henry.log_in(email)
    authenticator, recovery = turn_on_authenticator(henry)
    open_security_page(henry)
    expect(henry.page.get_by_test_id("totp-state")).to_contain_text("10 recovery codes left")

    # The password alone no longer signs in: a code is asked, a wrong one refused.
    henry.log_out()
    henry.submit_password(email)
    enter_code(henry, wrong_code(authenticator))
    expect(henry.page.get_by_role("alert")).to_contain_text("That code is not right")
    henry.page.get_by_label("Code from your authenticator app").fill(later_code(authenticator))
    henry.page.get_by_role("button", name="Continue").click()
    henry.expect_signed_in(email)

    # A recovery code instead of the app: once.
    henry.log_out()
    henry.submit_password(email)
    enter_code(henry, recovery[0])
    henry.expect_signed_in(email)
    henry.log_out()
    henry.submit_password(email)
    enter_code(henry, recovery[0])
    expect(henry.page.get_by_role("alert")).to_contain_text("That code is not right")
    enter_code(henry, recovery[1])
    henry.expect_signed_in(email)
    open_security_page(henry)
    expect(henry.page.get_by_test_id("totp-state")).to_contain_text("8 recovery codes left")


def test_passkey_added_on_the_account_page_signs_in_without_email_or_password(
    person: OpenPerson, stack: Stack, make_user: MakeUser, authenticator_of: object
) -> None:
    email = make_user("iris.passkey@example.com")
    iris = person()
    authenticator_of(iris)  # type: ignore[operator]
    iris.log_in(email)

    open_security_page(iris)
    page = iris.page
    adding = page.locator("form[data-passkey=add]")
    adding.get_by_label("Name of the new passkey").fill("Iris's laptop")
    adding.get_by_label("Your password").fill("not my password")
    adding.get_by_role("button", name="Add a passkey").click()
    expect(adding.get_by_role("alert")).to_have_text("That is not your current password.")
    adding.get_by_label("Your password").fill(PASSWORD)
    adding.get_by_role("button", name="Add a passkey").click()
    passkeys = page.get_by_test_id("passkeys")
    expect(passkeys.get_by_label("Name")).to_have_value("Iris's laptop")

    iris.log_out()
    page.get_by_role("link", name="Log in", exact=True).click()
    iris.expect_password_form()
    page.get_by_role("button", name="Sign in with a passkey").click()
    iris.expect_signed_in(email)

    # The passkey was used; removing it leaves nothing to sign in with.
    open_security_page(iris)
    expect(passkeys).to_contain_text(re.compile(r"last used"))
    passkeys.get_by_role("button", name="Remove").click()
    expect(page.get_by_test_id("passkeys")).to_have_count(0)
    iris.log_out()
    page.get_by_role("link", name="Log in", exact=True).click()
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.get_by_role("alert").filter(has_text=re.compile(r"\S"))).to_be_visible()
    expect(page.get_by_test_id("user-email")).to_have_count(0)
