"""Login throttling per account, per client address and per known device, kept in
the database so that every worker process (and every host on a shared
PostgreSQL) agrees.

A sliding window: each failure is one row; an account or address with
`limit` failures inside `window` seconds is refused until the oldest of them
ages out. Refused attempts are neither verified nor recorded: a lock-out ends
on schedule however hard it is hammered, and a correct password during the
lock-out teaches the attacker nothing.

A browser that logged in to an account before (a known device, see
`devices.py`) is counted on its own, at the per-account limit, instead: the
failures of strangers lock the account for every unknown device, never for its
owner's browser (OWASP's device cookies).
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
DEVICE = "device"


@dataclass(frozen=True)
class Attempt:
    """An attempt in progress, counted as a failure until it succeeds."""

    account: str | None
    row_ids: tuple[int, ...]
    device: str | None = None


@dataclass(frozen=True)
class ThrottlePolicy:
    per_account: int = 5
    per_address: int = 20
    window: int = 15 * 60

    def __post_init__(self) -> None:
        if min(self.per_account, self.per_address, self.window) < 1:
            raise ValueError(
                "ISSUER_LOGIN_MAX_FAILURES, ISSUER_LOGIN_MAX_FAILURES_PER_ADDRESS and "
                "ISSUER_LOGIN_FAILURE_WINDOW must be at least 1"
            )


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

    def admit(
        self, address: str, account: str | None = None, device: str | None = None
    ) -> Attempt | int:
        """Count an attempt as a failure *before* checking the limits; return
        it when it is within them, else forget it and return the seconds to
        wait. `device` is the known device's id for `account`, if the browser is one.

        Counting first closes the race in which many concurrent guesses all
        pass the check before any is recorded: whichever attempt checks last
        sees every earlier one, so at most `limit` are ever admitted.
        """
        now = self.clock()
        checks = self._checks(address, account, device)
        rows = [{"scope": scope, "key": key, "at": now} for scope, key, _ in checks]
        with self.engine.begin() as conn:
            ids = conn.execute(insert(login_failures).returning(login_failures.c.id), rows)
            attempt = Attempt(account=account, row_ids=tuple(ids.scalars()), device=device)
            # Forget what no window can see any more, so the table stays small.
            conn.execute(
                delete(login_failures).where(
                    login_failures.c.scope.in_((ACCOUNT, ADDRESS, DEVICE)),
                    login_failures.c.at <= now - self.policy.window,
                )
            )
        # This attempt is one of the rows: over the limit means `limit + 1`.
        if self._longest_wait(checks, now, extra=1) is None:
            return attempt
        self._delete(attempt.row_ids)
        return self.retry_after(address, account, device) or 1

    def succeeded(self, attempt: Attempt) -> None:
        """Un-count a successful attempt and, from an unknown device, clear its
        account's failures. The address keeps its earlier failures, so one known
        password cannot reset an address's budget; a known device leaves the
        account's failures alone, so strangers stay locked out."""
        condition = login_failures.c.id.in_(attempt.row_ids)
        if attempt.account is not None and attempt.device is None:
            condition = condition | (
                (login_failures.c.scope == ACCOUNT) & (login_failures.c.key == attempt.account)
            )
        with self.engine.begin() as conn:
            conn.execute(delete(login_failures).where(condition))

    def retry_after(
        self, address: str, account: str | None = None, device: str | None = None
    ) -> int | None:
        """Seconds until a new attempt is allowed, or None when allowed now."""
        longest = self._longest_wait(self._checks(address, account, device), self.clock())
        return None if longest is None else max(1, math.ceil(longest))

    def _checks(
        self, address: str, account: str | None, device: str | None
    ) -> list[tuple[str, str, int]]:
        """(scope, key, limit) of every budget an attempt spends."""
        if device is not None:
            return [(DEVICE, device, self.policy.per_account)]
        checks = [(ADDRESS, address, self.policy.per_address)]
        if account is not None:
            checks.append((ACCOUNT, account, self.policy.per_account))
        return checks

    def _longest_wait(
        self, checks: list[tuple[str, str, int]], now: float, extra: int = 0
    ) -> float | None:
        waits = [self._wait(scope, key, limit + extra, now) for scope, key, limit in checks]
        return max((w for w in waits if w is not None), default=None)

    def _wait(self, scope: str, key: str, nth: int, now: float) -> float | None:
        # Until the nth most recent failure leaves the window, fewer than
        # nth remain after it.
        query = (
            select(login_failures.c.at)
            .where(
                login_failures.c.scope == scope,
                login_failures.c.key == key,
                login_failures.c.at > now - self.policy.window,
            )
            .order_by(login_failures.c.at.desc())
            .offset(nth - 1)
            .limit(1)
        )
        with self.engine.connect() as conn:
            at = conn.execute(query).scalar()
        return None if at is None else at + self.policy.window - now

    def _delete(self, row_ids: tuple[int, ...]) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(login_failures).where(login_failures.c.id.in_(row_ids)))


class RateLimit:
    """At most `limit` events per key in any `window` seconds (sign-ups from one
    address, mails to one account), in the same table as login failures under its
    own `scope`. An event over the limit is not recorded."""

    def __init__(
        self,
        engine: Engine,
        scope: str,
        limit: int,
        window: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine, self.scope, self.limit, self.window, self.clock = (
            engine, scope, limit, window, clock,
        )  # fmt: skip

    def spend(self, key: str) -> int | None:
        """Record one event for `key`; None when within the limit, else the seconds
        until one is allowed again (the event is then forgotten). Recorded first and
        counted after, as `Throttle.admit`, so racing events cannot all pass."""
        now = self.clock()
        t = login_failures
        mine = (t.c.scope == self.scope) & (t.c.key == key)
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.scope == self.scope, t.c.at <= now - self.window))
            row_id = conn.execute(
                insert(t).values(scope=self.scope, key=key, at=now).returning(t.c.id)
            ).scalar_one()
        with self.engine.connect() as conn:
            times = (
                conn.execute(
                    select(t.c.at).where(mine, t.c.at > now - self.window).order_by(t.c.at.desc())
                )
                .scalars()
                .all()
            )
        if len(times) <= self.limit:
            return None
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.id == row_id))
        # Allowed again once the limit-th most recent other event leaves the window.
        return max(1, math.ceil(times[self.limit] + self.window - now))
