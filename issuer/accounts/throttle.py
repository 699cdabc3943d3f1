"""Login throttling per account and per client address, kept in the database
so that every worker process (and every host on a shared PostgreSQL) agrees.

A sliding window: each failure is one row; an account or address with
`limit` failures inside `window` seconds is refused until the oldest of them
ages out. Refused attempts are not verified and not recorded, so a locked
account cannot be kept locked forever by one attacker, and a correct password
during the lock-out teaches the attacker nothing.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select

from issuer.accounts.models import login_failures

ACCOUNT = "account"
ADDRESS = "address"


@dataclass(frozen=True)
class ThrottlePolicy:
    per_account: int = 5
    per_address: int = 20
    window: int = 15 * 60


def address_key(remote_addr: str | None) -> str:
    """IPv4 per address; IPv6 per /64, the block one subscriber usually holds."""
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class Throttle:
    def __init__(
        self,
        engine: Engine,
        policy: ThrottlePolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.policy = policy or ThrottlePolicy()
        self.clock = clock

    def retry_after(self, address: str, account: str | None = None) -> int | None:
        """Seconds until a new attempt is allowed, or None when allowed now."""
        now = self.clock()
        checks = [(ADDRESS, address, self.policy.per_address)]
        if account is not None:
            checks.append((ACCOUNT, account, self.policy.per_account))
        waits = [self._wait(scope, key, limit, now) for scope, key, limit in checks]
        longest = max((w for w in waits if w is not None), default=None)
        return None if longest is None else max(1, math.ceil(longest))

    def _wait(self, scope: str, key: str, limit: int, now: float) -> float | None:
        # The limit-th most recent failure: once it leaves the window, fewer
        # than `limit` remain.
        query = (
            select(login_failures.c.at)
            .where(
                login_failures.c.scope == scope,
                login_failures.c.key == key,
                login_failures.c.at > now - self.policy.window,
            )
            .order_by(login_failures.c.at.desc())
            .offset(limit - 1)
            .limit(1)
        )
        with self.engine.connect() as conn:
            at = conn.execute(query).scalar()
        return None if at is None else at + self.policy.window - now

    def record_failure(self, address: str, account: str | None = None) -> None:
        now = self.clock()
        rows = [{"scope": ADDRESS, "key": address, "at": now}]
        if account is not None:
            rows.append({"scope": ACCOUNT, "key": account, "at": now})
        with self.engine.begin() as conn:
            conn.execute(insert(login_failures), rows)
            # Forget what no window can see any more, so the table stays small.
            conn.execute(
                delete(login_failures).where(login_failures.c.at <= now - self.policy.window)
            )

    def forget_account(self, account: str) -> None:
        """After a successful login; the address count stays, so one known
        password cannot be used to reset an address's budget."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(login_failures).where(
                    login_failures.c.scope == ACCOUNT, login_failures.c.key == account
                )
            )
