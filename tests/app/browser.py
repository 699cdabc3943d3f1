"""Headless Chromium for the end-to-end tests, and what a person does in it.

Debian's `chromium`, driven by Playwright (never a downloaded browser: `.ci/run`
installs the package when it is missing). Each person gets a browser context
of their own, so cookie jars never mix, and every wait is bounded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    Playwright,
    Request,
    expect,
)

from tests.app.live import HTTP_TIMEOUT, PASSWORD, Stack
from tests.support.mail import link_in

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
# Every Playwright action, navigation and assertion gives up after this long.
TIMEOUT_MS = 10_000

# The app's enhanced forms: JavaScript posts them with fetch().
ENHANCED_FORM = re.compile(r"^/todos(/\d+/(toggle|delete))?$")

# What the page's script does to get its token (see app/static/access_token.js).
_FETCH_TOKEN = """async (csrf) => {
  const response = await fetch("/sql/token", {
    method: "POST",
    headers: {"X-CSRFToken": csrf, Accept: "application/json"},
    credentials: "same-origin",
  });
  return {status: response.status, body: await response.json()};
}"""


def launch(playwright: Playwright) -> Browser:
    """Debian's chromium, headless; a missing browser is a failure, never a skip."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
            "(`apt-get install chromium`; `.ci/run` installs it)",
            pytrace=False,
        )
    expect.set_options(timeout=TIMEOUT_MS)
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True, timeout=TIMEOUT_MS
    )


def new_context(browser: Browser, *, javascript: bool = True) -> BrowserContext:
    context = browser.new_context(java_script_enabled=javascript)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    return context


def run_sql(
    grant: dict[str, Any], query: str, params: list[Any] | None = None
) -> requests.Response:
    """Send one statement to the SQL endpoint the way the browser console does,
    with nothing but the access token the app handed out."""
    return requests.post(
        grant["endpoint"],
        json={"query": query, "params": params or []},
        headers={
            "Neon-Connection-String": grant["connection_string"],
            "Authorization": f"Bearer {grant['access_token']}",
        },
        timeout=HTTP_TIMEOUT,
    )


@dataclass
class Person:
    """One person at one browser (context): the app's pages as they use them."""

    page: Page
    stack: Stack
    # (resource type, path) of every POST the page sent: "fetch" for an
    # enhanced form, "document" for a plain one.
    posts: list[tuple[str, str]] = field(default_factory=list)
    # Messages of the dialogs the page opened (each one accepted).
    dialogs: list[str] = field(default_factory=list)
    # Uncaught script errors and Content-Security-Policy violations.
    script_errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("request", self._record_post)
        self.page.on("dialog", self._accept)
        self.page.on("pageerror", lambda error: self.script_errors.append(str(error)))
        self.page.on("console", self._record_violation)

    def _record_violation(self, message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.script_errors.append(message.text)

    def _record_post(self, request: Request) -> None:
        if request.method == "POST":
            self.posts.append((request.resource_type, urlsplit(request.url).path))

    def _accept(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.accept()

    @property
    def home(self) -> str:
        return f"{self.stack.app_url}/"

    # Signing in and out.

    def sign_up(self, email: str) -> None:
        """Follow the app's "Sign up" link, create the account at the issuer and confirm
        the address with the link it mails: back in the app, signed in."""
        before = self.stack.inbox.count(email)
        self.submit_sign_up(email)
        # The person opens the mail and its link, in this same browser.
        link = link_in(self.stack.inbox.latest(email, before), "/verify-email")
        self.page.goto(link)
        self.page.get_by_role("button", name="Confirm my email").click()
        self.expect_signed_in(email)

    def submit_sign_up(self, email: str) -> None:
        """Fill the issuer's sign-up form from the app's link: "check your email"."""
        page = self.page
        page.goto(self.home)
        page.get_by_role("link", name="Sign up", exact=True).click()
        expect(page).to_have_url(re.compile(rf"^{re.escape(self.stack.issuer_url)}/signup\?"))
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_label("Repeat the password").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        self.expect_heading("Check your email")
        expect(page.get_by_test_id("sent-to")).to_have_text(email)

    def log_in(self, email: str, password: str = PASSWORD) -> None:
        self.submit_password(email, password)
        self.expect_signed_in(email)

    def submit_password(self, email: str, password: str = PASSWORD) -> None:
        """From the app's "Log in" link, fill and send the issuer's password form."""
        page = self.page
        page.goto(self.home)
        page.get_by_role("link", name="Log in", exact=True).click()
        self.expect_password_form()
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password", exact=True).fill(password)
        page.get_by_role("button", name="Log in", exact=True).click()

    def log_out(self) -> None:
        self.page.goto(self.home)
        self.page.get_by_role("button", name="Log out").click()
        self.expect_signed_out()

    def expect_heading(self, text: str) -> None:
        expect(self.page.get_by_role("heading", level=1)).to_have_text(text)

    def expect_signed_in(self, email: str) -> None:
        expect(self.page).to_have_url(self.home)
        expect(self.page.get_by_test_id("user-email")).to_have_text(email)

    def expect_signed_out(self) -> None:
        # Back from the issuer's end-session endpoint, the URL carries its `state`.
        expect(self.page).to_have_url(re.compile(rf"^{re.escape(self.home)}(\?state=[\w-]+)?$"))
        expect(self.page.get_by_role("heading", level=1)).to_have_text(
            "Your todos, guarded by the database"
        )
        expect(self.page.get_by_test_id("user-email")).to_have_count(0)

    def expect_password_form(self) -> None:
        """The issuer asks for a password (rather than signing in at once)."""
        expect(self.page).to_have_url(re.compile(rf"^{re.escape(self.stack.issuer_url)}/login\?"))
        expect(self.page.get_by_label("Password", exact=True)).to_be_visible()

    # The todo list.

    def add(self, task: str) -> None:
        self.page.get_by_label("New todo").fill(task)
        self.page.get_by_role("button", name="Add", exact=True).click()
        expect(self.page.locator("li.todo .task").first).to_have_text(task)

    def mark_done(self, task: str) -> None:
        self.page.get_by_role("button", name=f"Mark done: {task}", exact=True).click()
        expect(self._check(task, done=True)).to_have_attribute("aria-pressed", "true")

    def mark_not_done(self, task: str) -> None:
        self.page.get_by_role("button", name=f"Mark not done: {task}", exact=True).click()
        expect(self._check(task, done=False)).to_have_attribute("aria-pressed", "false")

    def edit(self, task: str, new_task: str) -> None:
        page = self.page
        page.get_by_role("link", name=f"Edit: {task}", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Edit todo")
        page.get_by_label("Text").fill(new_task)
        page.get_by_role("button", name="Save").click()
        expect(page.locator(".flash")).to_have_text(["Todo updated."])

    def delete(self, task: str) -> None:
        self.page.get_by_role("button", name=f"Delete: {task}", exact=True).click()
        expect(self.page.locator(".flash")).to_have_text(["Todo deleted."])

    def _check(self, task: str, *, done: bool) -> Locator:
        label = f"{'Mark not done' if done else 'Mark done'}: {task}"
        return self.page.get_by_role("button", name=label, exact=True)

    def expect_todos(self, tasks: list[str], done: tuple[str, ...] = ()) -> None:
        """The list shows exactly `tasks`, newest first, and `done` of them are done."""
        expect(self.page.locator("li.todo .task")).to_have_text(tasks)
        expect(self.page.locator("li.todo.done .task")).to_have_text(list(done))
        if tasks:
            expect(self.page.locator(".count")).to_have_text(f"{len(done)} of {len(tasks)} done")
        else:
            expect(self.page.locator(".empty")).to_be_visible()

    def todo_ids(self) -> list[int]:
        ids = self.page.locator("li.todo").evaluate_all("items => items.map(i => i.dataset.id)")
        return [int(i) for i in ids]

    def reload(self) -> None:
        self.page.goto(self.home)

    # What the database sees, and the token the browser may use.

    def database_user_id(self) -> str:
        """`auth.user_id()` as the database reports it on the /session page."""
        self.page.goto(f"{self.stack.app_url}/session")
        user_id = self.page.get_by_test_id("db-user-id")
        expect(user_id).not_to_be_empty()
        return user_id.inner_text().strip()

    def access_token(self) -> dict[str, Any]:
        """Ask the app for the access token as the SQL console's script does."""
        csrf = self.page.locator("input[name=csrf_token]").first.get_attribute("value")
        answer = self.page.evaluate(_FETCH_TOKEN, csrf)
        assert answer["status"] == 200, answer
        return answer["body"]


# A fixture's factories: `person()` opens a new person, `make_user(email)` creates one.
OpenPerson = Callable[..., Person]
MakeUser = Callable[[str], str]
