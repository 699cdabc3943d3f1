"""Password hashing with argon2id at OWASP's recommended parameters.

We use OWASP's first listed configuration, m=19 MiB, t=2, p=1: it keeps a
login to a few tens of milliseconds of one core, so a 2-core host still serves
logins while under a guessing attack (which the throttle caps anyway). Hashes
made with other parameters are upgraded on the next successful login.
"""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

PASSWORD_MIN_LENGTH = 8
# Far above any passphrase, low enough that nobody can make us hash megabytes.
PASSWORD_MAX_LENGTH = 256

hasher = PasswordHasher(
    time_cost=2,
    memory_cost=19 * 1024,
    parallelism=1,
    hash_len=32,
    salt_len=16,
    type=Type.ID,
)


class PasswordPolicyError(ValueError):
    """A new password that we refuse to store."""


def check_policy(password: str) -> None:
    """Length only, as NIST SP 800-63B advises; no composition rules."""
    if len(password) < PASSWORD_MIN_LENGTH:
        raise PasswordPolicyError(
            f"The password must be at least {PASSWORD_MIN_LENGTH} characters long."
        )
    if len(password) > PASSWORD_MAX_LENGTH:
        raise PasswordPolicyError(
            f"The password must be at most {PASSWORD_MAX_LENGTH} characters long."
        )


def hash_password(password: str) -> str:
    check_policy(password)
    return hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches; False for a mismatch or a corrupt hash."""
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return hasher.check_needs_rehash(password_hash)


@cache
def dummy_hash() -> str:
    """A hash no password matches, verified for unknown users so that they
    cost the same time as a wrong password (no account enumeration by timing)."""
    return hasher.hash("unknown user: no password matches this hash")


def burn_verification(password: str) -> None:
    """Spend exactly the time a real verification would, and always fail."""
    verify_password(dummy_hash(), password)
