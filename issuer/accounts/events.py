"""What other parts of the issuer must hear about an account, without accounts
importing them (the OAuth side subscribes in `issuer.oauth.init_app`).

Signals are sent inside the transaction that makes the change, with its connection
as the sender, so that a receiver's writes commit or roll back with it.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: The account's password changed (or it was deleted): whatever it signed in to
#: must end. Sent with the transaction's connection; keyword `user_id`.
credentials_changed = _signals.signal("credentials-changed")
