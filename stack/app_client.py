"""The todo app's OAuth client at the issuer: registered by `make run`, then reused.

The app is a confidential, first-party client. The issuer keeps only a digest
of its secret, so `make run` keeps the secret in `DATA_DIR/app-client.json`
(mode 0600) and hands it to the app's process. Every run checks the file
against the registration: when they disagree (APP_URL moved, the file or the
issuer's database was lost) the registration is replaced with a new secret,
and the former one's codes and refresh tokens go with it. One move keeps them:
the same app renamed on this machine (`make run` now publishes `127.0.0.1` as
`localhost`, which WebAuthn needs), so an upgrade signs nobody out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import Engine

from issuer.config import DEFAULT_DATABASE_AUDIENCE
from issuer.loopback import is_loopback
from issuer.oauth import clients
from issuer.oauth.clients import Client, Registration
from private_files import write_atomically

CLIENT_ID = "todo-app"
FILE_NAME = "app-client.json"


@dataclass(frozen=True)
class Credentials:
    """What the app needs to authenticate at /token (APP_CLIENT_ID, APP_CLIENT_SECRET)."""

    client_id: str
    client_secret: str


def registration(app_url: str, audience: str = DEFAULT_DATABASE_AUDIENCE) -> Registration:
    """The app's registration for the public base URL `app_url` (see app/config.py),
    allowed the database's `audience`: its tokens are the ones that open it."""
    base = app_url.rstrip("/")
    return Registration(
        name="Todo app",
        redirect_uris=(f"{base}/auth/callback",),
        post_logout_redirect_uris=(f"{base}/",),
        public=False,
        grant_types=("authorization_code", "refresh_token"),
        scope="openid profile email",
        first_party=True,
        client_id=CLIENT_ID,
        audiences=(audience,),
    )


def ensure(
    engine: Engine, app_url: str, path: Path, audience: str = DEFAULT_DATABASE_AUDIENCE
) -> tuple[Credentials, str | None]:
    """Credentials of a client registered for `app_url`, and why it was (re)registered.

    The reason is None when the stored credentials were reused as they are.
    A changed database audience is updated in place (same secret, same
    refresh tokens). Raises `clients.ClientError` for an APP_URL or audience
    the issuer refuses (nothing is written then).
    """
    wanted = registration(app_url, audience)
    stored = _read(path)
    client = clients.load(engine, CLIENT_ID)
    if client is None:
        reason = f"registered the todo app as OAuth client {CLIENT_ID!r}"
    elif stored is None:
        reason = f"{path} is missing or unreadable: re-registered {CLIENT_ID!r} with a new secret"
    elif not client.check_client_secret(stored.client_secret):
        reason = f"{path} does not match the issuer: re-registered {CLIENT_ID!r}"
    elif _renamed_on_this_machine(client, wanted):
        clients.set_redirect_uris(
            engine, CLIENT_ID, wanted.redirect_uris, wanted.post_logout_redirect_uris
        )
        clients.set_audiences(engine, CLIENT_ID, wanted.audiences)
        return stored, (
            f"APP_URL is now {app_url}: the todo app's redirect URIs follow it"
            " (same secret, same refresh tokens)"
        )
    elif not _matches(client, wanted):
        reason = f"APP_URL is now {app_url}: re-registered {CLIENT_ID!r} for it"
    elif client.audiences != wanted.audiences:
        clients.set_audiences(engine, CLIENT_ID, wanted.audiences)
        return stored, f"the todo app's client may now obtain the audience {audience}"
    else:
        return stored, None
    client, secret = clients.replace(engine, wanted)
    assert secret is not None, "a confidential client always gets a secret"
    credentials = Credentials(client.client_id, secret)
    _write(path, credentials)
    return credentials, reason


def _matches(client: Client, wanted: Registration) -> bool:
    return (
        not client.is_public
        and client.redirect_uris == wanted.redirect_uris
        and client.post_logout_redirect_uris == wanted.post_logout_redirect_uris
        and client.grant_types == wanted.grant_types
        and client.scope == wanted.scope
        and client.first_party == wanted.first_party
    )


def _renamed_on_this_machine(client: Client, wanted: Registration) -> bool:
    """Whether only the loopback host name of the URIs differs (127.0.0.1 → localhost)."""

    def on_this_machine(uris: tuple[str, ...]) -> tuple[tuple[str, int | None, str], ...] | None:
        parts = [urlsplit(uri) for uri in uris]
        if not all(part.scheme == "http" and is_loopback(part.hostname) for part in parts):
            return None
        return tuple((part.scheme, part.port, part.path) for part in parts)

    before = client.redirect_uris + client.post_logout_redirect_uris
    after = wanted.redirect_uris + wanted.post_logout_redirect_uris
    moved = before != after and on_this_machine(before) is not None
    unchanged = replace(
        wanted,
        redirect_uris=client.redirect_uris,
        post_logout_redirect_uris=client.post_logout_redirect_uris,
    )
    return (
        moved and on_this_machine(before) == on_this_machine(after) and _matches(client, unchanged)
    )


def _read(path: Path) -> Credentials | None:
    try:
        data = json.loads(path.read_text())
        credentials = Credentials(str(data["client_id"]), str(data["client_secret"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return credentials if credentials.client_id == CLIENT_ID else None


def _write(path: Path, credentials: Credentials) -> None:
    """Atomically, private from the first byte: a reader sees the old file or the new one."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    body = {"client_id": credentials.client_id, "client_secret": credentials.client_secret}
    data = (json.dumps(body, indent=2) + "\n").encode()
    write_atomically(path, data, temp_prefix=f".{path.name}.")
