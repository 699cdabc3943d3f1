"""What other parts of the issuer must hear about an account, without accounts
importing them (the OAuth side subscribes in `issuer.oauth.init_app`, and answers
the account page through `AppAccessRegistry`).

Signals are sent inside the transaction that makes the change, with its connection
as the sender, so that a receiver's writes commit or roll back with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from blinker import Namespace

_signals = Namespace()

#: The account's password changed (or it was deleted): whatever it signed in to
#: must end. Sent with the transaction's connection; keyword `user_id`.
credentials_changed = _signals.signal("credentials-changed")


@dataclass(frozen=True)
class AppAccess:
    """An app that holds refresh tokens of a user (shown on the account page)."""

    client_id: str
    name: str
    since: float


class AppAccessRegistry(Protocol):
    """What the account page asks of the OAuth side (`app.extensions["app_access"]`)."""

    def apps(self, user_id: str) -> list[AppAccess]: ...

    def revoke(self, user_id: str, client_id: str) -> int: ...
