"""Live traffic: client threads that keep getting tokens and querying through the proxy.

Each `Client` is one confidential OAuth client. It gets an access token by
`client_credentials`, uses it for a random part of its lifetime (never past
`exp - 1 s`, so every token it presents is valid), then gets a new one. For
every two `select auth.user_id()` it inserts a todo under RLS; both must come
back with its own id, and every insert the proxy acknowledged is remembered,
so a test can check that none was lost. Whatever goes wrong is
recorded as a `Failure` with the token's kid, never raised in the thread.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests

from stack.migrate import LocalDatabase
from tests.resilience.services import CONNECTION, HTTP_TIMEOUT, Deployment, stored_todos

# After a failure a client waits this long before trying again, as drivers back off.
BACKOFF = 0.02


def token_header(token: str) -> dict[str, Any]:
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


def token_claims(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def sql(
    http: requests.Session | None, url: str, token: str, query: str, params: list[Any] | None = None
) -> requests.Response:
    """One `/sql` request as Neon's driver sends it (a new connection when `http` is None)."""
    send = (http or requests).post
    return send(
        url,
        json={"query": query, "params": params or []},
        headers={"Neon-Connection-String": CONNECTION, "Authorization": f"Bearer {token}"},
        timeout=HTTP_TIMEOUT,
    )


def get_token(deployment: Deployment, credentials: tuple[str, str]) -> str:
    response = requests.post(
        f"{deployment.issuer_url}/token",
        data={"grant_type": "client_credentials"},
        auth=credentials,
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@dataclass(frozen=True)
class Failure:
    at: float
    what: str
    status: int | None
    detail: str
    kid: str | None = None


def service_identity(client_id: str) -> str:
    """`auth.user_id()` of a client_credentials token: the client as itself, never a user."""
    return f"{client_id}@clients"


@dataclass
class Tally:
    """What every client saw, shared between threads."""

    tokens: int = 0
    queries: int = 0
    failures: list[Failure] = field(default_factory=list)
    kids_issued: Counter[str] = field(default_factory=Counter)
    # kid -> the last time the proxy accepted a token it signed
    last_accepted: dict[str, float] = field(default_factory=dict)
    acked: dict[str, set[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def assert_writes_kept(self, database: LocalDatabase) -> int:
        """Every insert the proxy acknowledged is in the database; return how many."""
        stored = stored_todos(database)
        for client_id, ids in self.acked.items():
            mine = stored.get(service_identity(client_id), set())
            assert ids <= mine, f"{client_id} lost acknowledged todos"
        return sum(len(ids) for ids in self.acked.values())

    def assert_quiet_since(self, since: float) -> None:
        """No client saw a failure after `since`, and clients got work done after it."""
        late = [f for f in self.failures if f.at > since]
        assert late == [], late[:3]
        assert any(when > since for when in self.last_accepted.values())

    def fail(self, what: str, status: int | None, detail: str, kid: str | None = None) -> None:
        with self.lock:
            self.failures.append(Failure(time.time(), what, status, detail[:2000], kid))


class Client(threading.Thread):
    def __init__(
        self,
        deployment: Deployment,
        credentials: tuple[str, str],
        tally: Tally,
        stop: threading.Event,
        seed: int,
    ) -> None:
        super().__init__(name=f"client-{credentials[0]}", daemon=True)
        self.deployment = deployment
        self.client_id, self.secret = credentials
        self.tally, self.stop = tally, stop
        self.rng = random.Random(seed)
        self.http = requests.Session()
        self.sequence = 0
        tally.acked.setdefault(self.client_id, set())

    def run(self) -> None:
        with self.http:
            while not self.stop.is_set():
                token = self.get_token()
                if token is None:
                    self.stop.wait(BACKOFF)
                    continue
                expires = token_claims(token)["exp"]
                hold_until = min(time.time() + self.rng.uniform(0.2, 8.0), expires - 1)
                while not self.stop.is_set() and time.time() < hold_until:
                    if not self.query(token):
                        self.stop.wait(BACKOFF)

    def get_token(self) -> str | None:
        try:
            response = self.http.post(
                f"{self.deployment.issuer_url}/token",
                data={"grant_type": "client_credentials"},
                auth=(self.client_id, self.secret),
                timeout=HTTP_TIMEOUT,
            )
        except requests.RequestException as error:
            self.tally.fail("token", None, type(error).__name__)
            return None
        if response.status_code != 200:
            self.tally.fail("token", response.status_code, response.text)
            return None
        token = response.json()["access_token"]
        with self.tally.lock:
            self.tally.tokens += 1
            self.tally.kids_issued[token_header(token)["kid"]] += 1
        return token

    def query(self, token: str) -> bool:
        kid = token_header(token)["kid"]
        self.sequence += 1
        inserting = self.sequence % 3 == 0
        try:
            if inserting:
                task = f"{self.client_id} #{self.sequence}"
                response = sql(
                    self.http,
                    self.deployment.sql_url,
                    token,
                    "insert into todos (task) values ($1) returning id, user_id",
                    [task],
                )
            else:
                response = sql(
                    self.http, self.deployment.sql_url, token, "select auth.user_id() as user_id"
                )
        except requests.RequestException as error:
            self.tally.fail("query", None, type(error).__name__, kid)
            return False
        if response.status_code != 200:
            self.tally.fail("query", response.status_code, response.text, kid)
            return False
        row = response.json()["rows"][0]
        if row["user_id"] != service_identity(self.client_id):
            self.tally.fail("query", 200, f"identity {row['user_id']!r}", kid)
            return False
        with self.tally.lock:
            self.tally.queries += 1
            self.tally.last_accepted[kid] = time.time()
            if inserting:
                self.tally.acked[self.client_id].add(int(row["id"]))
        return True


class Traffic:
    """Several `Client`s running together until `stop()`."""

    def __init__(self, deployment: Deployment, credentials: list[tuple[str, str]]) -> None:
        self.tally = Tally()
        self._stop = threading.Event()
        self.clients = [
            Client(deployment, pair, self.tally, self._stop, seed)
            for seed, pair in enumerate(credentials)
        ]

    def __enter__(self) -> Traffic:
        for client in self.clients:
            client.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for client in self.clients:
            client.join(timeout=HTTP_TIMEOUT + 5)
            assert not client.is_alive(), f"{client.name} did not stop"
