"""The shortest path through everything: sign in, add a todo, see it."""

from __future__ import annotations

from tests.app.live import HTTP_TIMEOUT, csrf, log_in


def test_login_add_and_list(stack, make_user) -> None:
    browser = log_in(stack, make_user("smoke@example.com"))
    token = csrf(browser, stack)
    added = browser.post(
        f"{stack.app_url}/todos",
        data={"task": "buy milk", "csrf_token": token},
        timeout=HTTP_TIMEOUT,
    )
    assert added.status_code == 200, added.text
    assert "buy milk" in added.text
    assert "smoke@example.com" in added.text
