"""A simulated user: one browser of their own, signing in through the issuer's
pages and doing todo CRUD, keeping a ledger of what the app acknowledged.

A visitor acts one step at a time, like a person without JavaScript: every
write is a form POST answered by a redirect to the list. So after each step
the list the app shows must be exactly the ledger, and a todo is
acknowledged when it appears there. Texts carry the visitor's own prefix, so
a todo of anyone else on a page is a leak, whatever its id.

Meanwhile a second tab of the same login keeps reloading the list, so that
two requests of one login often need the same token refresh at once: the
app must refresh once, since a refresh token presented twice ends the login.
"""

from __future__ import annotations

import random
import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from tests.app.live import hidden_field
from tests.support.mail import Inbox, link_in

HTTP_TIMEOUT = 15
PASSWORD = "load test password, not for production"
# Between the second tab's reloads: enough to leave most of the traffic to the
# writes, short enough that its requests still meet the first tab's refreshes.
SECOND_TAB_PAUSE_S = 0.2

_TODO = re.compile(
    r'<li class="todo( done)?" data-id="(\d+)">.*?<span class="task">([^<]*)</span>', re.S
)

# id -> (task, done)
Ledger = dict[int, tuple[str, bool]]


@dataclass
class Traffic:
    """Every HTTP response any visitor received (redirects included), shared across threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)

    def observe(self, response: requests.Response, *_args: object, **_kwargs: object) -> None:
        """A `requests` response hook: latency, status, and anything a user must never see."""
        broken = response.status_code >= 500 or "Traceback" in response.text
        with self.lock:
            self.latencies.append(response.elapsed.total_seconds())
            self.statuses[response.status_code] += 1
            if broken:
                self.server_errors.append(
                    f"{response.request.method} {response.url} -> {response.status_code}: "
                    f"{response.text[:300]!r}"
                )

    def percentile_ms(self, q: int) -> float:
        with self.lock:
            return statistics.quantiles(self.latencies, n=100)[q - 1] * 1000


class Registry:
    """Which todo ids belong to whom, for visitors probing each other's ids."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: dict[int, str] = {}

    def add(self, todo_id: int, owner: str) -> None:
        with self._lock:
            self._owner[todo_id] = owner

    def remove(self, todo_id: int) -> None:
        with self._lock:
            self._owner.pop(todo_id, None)

    def foreign(self, me: str, rng: random.Random) -> int | None:
        with self._lock:
            theirs = sorted(i for i, owner in self._owner.items() if owner != me)
        return rng.choice(theirs) if theirs else None


def email_of(index: int) -> str:
    return f"load-{index:02d}@example.com"


class Visitor:
    """One user in one browser; `problems` says everything that went wrong."""

    def __init__(
        self,
        index: int,
        app_url: str,
        traffic: Traffic,
        registry: Registry,
        *,
        has_account: bool,
        inbox: Inbox,
    ) -> None:
        self.inbox = inbox
        self.email = email_of(index)
        self.prefix = f"u{index:02d}-"
        self.app_url = app_url
        self.has_account = has_account
        self.registry = registry
        self.rng = random.Random(index)
        self.traffic = traffic
        self.browser = requests.Session()
        self.browser.hooks["response"].append(traffic.observe)
        self.ledger: Ledger = {}
        self.created: set[int] = set()
        self.actions: Counter[str] = Counter()
        self.second_tab_reloads = 0
        self.problems: list[str] = []
        self.leaks: list[str] = []
        self._csrf = ""
        self._serial = 0
        # The text of a todo being added: on the next page before it has an id here.
        self._adding: str | None = None

    # -- signing in -----------------------------------------------------------

    def sign_in(self) -> bool:
        """Sign up (a new user) or log in (an existing one) through the issuer's pages."""
        action = "log_in" if self.has_account else "sign_up"
        page = self._get(f"/{'login' if self.has_account else 'signup'}")
        if page.status_code != 200 or "csrf_token" not in page.text:
            self._problem(action, page)
            return False
        form = {"email": self.email, "password": PASSWORD}
        if not self.has_account:
            form["confirm"] = PASSWORD
        form["csrf_token"] = hidden_field(page.text, "csrf_token")
        done = self.browser.post(page.url, data=form, timeout=HTTP_TIMEOUT)
        if not self.has_account:
            done = self._confirm_by_mail(done)
            if done is None:
                return False
        return self._list(action, done) is not None

    def _confirm_by_mail(self, sent: requests.Response) -> requests.Response | None:
        """A new account: open the link the issuer mailed and press its button, which
        carries on to the app."""
        if sent.status_code != 200 or "Check your email" not in sent.text:
            self._problem("sign_up", sent)
            return None
        link = link_in(self.inbox.latest(self.email, timeout=30), "/verify-email")
        page = self.browser.get(link, timeout=HTTP_TIMEOUT)
        if page.status_code != 200:
            self._problem("confirm_email", page)
            return None
        form = {
            "csrf_token": hidden_field(page.text, "csrf_token"),
            "token": hidden_field(page.text, "token"),
        }
        action = link.split("?", 1)[0]
        return self.browser.post(action, data=form, timeout=HTTP_TIMEOUT)

    # -- one step of traffic --------------------------------------------------

    def step(self) -> None:
        """One user action, chosen at random with weights like a real session's."""
        actions: list[tuple[Callable[[], None], int]] = [
            (self.add, 30),
            (self.show_list, 15),
            (self.probe, 10),
        ]
        if self.ledger:
            actions += [(self.toggle, 20), (self.edit, 15), (self.delete, 10)]
        chosen = self.rng.choices([a for a, _ in actions], [w for _, w in actions])[0]
        chosen()

    def add(self) -> None:
        task = self._adding = self._new_text()
        seen = self._list("add", self._post("/todos", task=task))
        self._adding = None
        if seen is None:
            return
        ids = [todo_id for todo_id, (text, _) in seen.items() if text == task]
        if len(ids) != 1:
            self.problems.append(f"add: {task!r} listed {len(ids)} times after its POST")
            return
        self.ledger[ids[0]] = (task, False)
        self.created.add(ids[0])
        self.registry.add(ids[0], self.email)
        self._compare("add", seen)

    def toggle(self) -> None:
        todo_id, (task, done) = self._pick()
        # Both forms the app accepts: the explicit target state, and "flip it".
        form = {"done": "false" if done else "true"} if self.rng.random() < 0.5 else {}
        seen = self._list("toggle", self._post(f"/todos/{todo_id}/toggle", **form))
        if seen is not None:
            self.ledger[todo_id] = (task, not done)
            self._compare("toggle", seen)

    def edit(self) -> None:
        todo_id, (task, done) = self._pick()
        page = self._get(f"/todos/{todo_id}/edit")
        if page.status_code != 200 or f'value="{task}"' not in page.text:
            self._problem("edit form", page)
            return
        renamed = f"{task.split('~')[0]}~{self._next_serial()}"
        seen = self._list("edit", self._post(f"/todos/{todo_id}/edit", task=renamed))
        if seen is not None:
            self.ledger[todo_id] = (renamed, done)
            self._compare("edit", seen)

    def delete(self) -> None:
        todo_id, _ = self._pick()
        seen = self._list("delete", self._post(f"/todos/{todo_id}/delete"))
        if seen is not None:
            del self.ledger[todo_id]
            self.registry.remove(todo_id)
            self._compare("delete", seen)

    def show_list(self) -> None:
        seen = self._list("list", self._get("/"))
        if seen is not None:
            self._compare("list", seen)

    def probe(self) -> None:
        """Reach for another user's todo by id, as an attacker would: always 404."""
        todo_id = self.registry.foreign(self.email, self.rng)
        if todo_id is None:
            self.show_list()
            return
        self.actions["probe"] += 1
        kind = self.rng.choice(("toggle", "edit", "rename", "delete"))
        if kind == "edit":
            answer = self._get(f"/todos/{todo_id}/edit")
        elif kind == "rename":
            answer = self._post(f"/todos/{todo_id}/edit", task=f"{self.prefix}stolen")
        else:
            answer = self._post(
                f"/todos/{todo_id}/{kind}", **({"done": "true"} if kind == "toggle" else {})
            )
        if answer.status_code == 404 and not answer.history:
            self._check_leaks(answer.text, f"probe {kind}")
        elif 'data-testid="user-email"' not in answer.text:
            self._problem(f"probe {kind} (signed out?)", answer)
        else:
            self.leaks.append(
                f"probe {kind} of foreign todo {todo_id}: {answer.status_code} at {answer.url}"
            )

    def reload_in_second_tab(self, deadline: float) -> None:
        """Another tab of this login (same cookies) reloading the list until `deadline`.

        It only reads, so its pages need not match the ledger of the first
        tab's writes in flight; they must still be this user's list.
        """
        tab = requests.Session()
        tab.hooks["response"].append(self.traffic.observe)
        tab.cookies.update(self.browser.cookies)
        while time.monotonic() < deadline:
            page = tab.get(f"{self.app_url}/", timeout=HTTP_TIMEOUT)
            if page.status_code != 200 or "<h1>My todos</h1>" not in page.text:
                self._problem("second tab", page)
                return
            for done, todo_id, task in _TODO.findall(page.text):
                if not task.startswith(self.prefix):
                    self.leaks.append(
                        f"second tab: saw todo {todo_id} {task!r} (done={bool(done)})"
                    )
            self.second_tab_reloads += 1
            time.sleep(SECOND_TAB_PAUSE_S)

    # -- checks ----------------------------------------------------------------

    def final_list(self) -> Ledger | None:
        """The list as the user sees it at the end (None if no longer logged in)."""
        page = self._get("/")
        if f'data-testid="user-email">{self.email}<' not in page.text:
            self._problem("final list (logged out?)", page)
            return None
        return self._list("final list", page)

    def _list(self, action: str, response: requests.Response) -> Ledger | None:
        """The todos on the list page `response` should be; None (and a problem) otherwise."""
        if (
            response.status_code != 200
            or response.url != f"{self.app_url}/"
            or "<h1>My todos</h1>" not in response.text
        ):
            self._problem(action, response)
            return None
        self.actions[action] += 1
        self._csrf = hidden_field(response.text, "csrf_token")
        self._check_leaks(response.text, action)
        return {
            int(todo_id): (task, bool(done)) for done, todo_id, task in _TODO.findall(response.text)
        }

    def _check_leaks(self, html: str, action: str) -> None:
        for done, todo_id, task in _TODO.findall(html):
            mine = int(todo_id) in self.created or task == self._adding
            if not task.startswith(self.prefix) or not mine:
                self.leaks.append(f"{action}: saw todo {todo_id} {task!r} (done={bool(done)})")

    def _compare(self, action: str, seen: Ledger) -> None:
        if seen != self.ledger:
            missing = {k: v for k, v in self.ledger.items() if seen.get(k) != v}
            extra = {k: v for k, v in seen.items() if self.ledger.get(k) != v}
            self.problems.append(f"{action}: list differs: expected {missing}, listed {extra}")

    def _problem(self, action: str, response: requests.Response) -> None:
        flash = re.search(r'<p class="flash flash-\w+">([^<]*)<', response.text)
        said = flash.group(1).strip() if flash else response.text[:200]
        self.problems.append(f"{action}: {response.status_code} at {response.url}: {said!r}")

    # -- HTTP --------------------------------------------------------------------

    def _get(self, path: str) -> requests.Response:
        return self.browser.get(f"{self.app_url}{path}", timeout=HTTP_TIMEOUT)

    def _post(self, path: str, **form: str) -> requests.Response:
        return self.browser.post(
            f"{self.app_url}{path}", data={**form, "csrf_token": self._csrf}, timeout=HTTP_TIMEOUT
        )

    def _pick(self) -> tuple[int, tuple[str, bool]]:
        todo_id = self.rng.choice(sorted(self.ledger))
        return todo_id, self.ledger[todo_id]

    def _new_text(self) -> str:
        return f"{self.prefix}t{self._next_serial()}"

    def _next_serial(self) -> int:
        self._serial += 1
        return self._serial
