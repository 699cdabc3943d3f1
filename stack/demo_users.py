"""`make run DEMO=1` (`python -m stack run --demo-users`): two accounts to try the app with.

Never created by default: their passwords are printed and documented, so they
belong on a developer's machine only.
"""

from __future__ import annotations

from sqlalchemy import Engine

from issuer.accounts import users

#: Email and password of each demo account (documented in the README).
DEMO_USERS = (
    ("alice@example.com", "alice-demo-password"),
    ("bob@example.com", "bob-demo-password"),
)


def ensure(engine: Engine) -> list[str]:
    """Create the demo accounts that are missing; return the emails created.

    An existing account is left as it is (its password may have been changed).
    """
    created = []
    for email, password in DEMO_USERS:
        if users.find_user(engine, email) is not None:
            continue
        try:
            users.create_user(engine, email, password, email_verified=True)
        except users.DuplicateEmailError:
            continue  # created meanwhile by someone else: just as good
        created.append(email)
    return created
