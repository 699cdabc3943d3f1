"""Key rotation and emergency revocation under live traffic, on the real servers.

Time is compressed by TIME_SCALE (100): the proxy runs Neon's cache rules on
durations divided by 100 (JWKS background refresh 3 s, unknown-kid refetch
0.3 s, validated-token cache 3 s; see scaled_proxy.py), tokens live a few
seconds instead of 15 minutes, the issuer's pruning leeway is 1 s.

Publication before signing is what makes a rotation safe: a `next` key must be
in every verifier's cache before it becomes active. The CLI guards this with
ISSUER_ROTATION_MIN_PUBLISHED, which it refuses to set below Neon's one-hour
blocking refresh (an absolute floor that cannot be compressed), so the tests
rotate with `--force` only once the guarded condition is observed to hold:
`next` has been published for longer than the proxy's (scaled) background
refresh plus the issuer's one-second reload, and the proxy has fetched the JWKS
that publishes it (seen in the issuer's access log, by the proxy's User-Agent).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

import proxy.jwks
import proxy.jwt
from stack.migrate import LocalDatabase
from tests.resilience.services import (
    HTTP_TIMEOUT,
    RING_REFRESH,
    TIME_SCALE,
    Deployment,
    wait_for,
)
from tests.resilience.traffic import Traffic, get_token, sql, token_claims, token_header

pytestmark = pytest.mark.resilience

CLIENTS = 3
ROTATIONS = 4
TOKEN_TTL = 9
# The proxy's background JWKS refresh (Neon: 5 min), compressed.
AUTO_RENEW = proxy.jwks.AUTO_RENEW / TIME_SCALE
# A JWKS fetch on loopback, and a busy 2-core machine scheduling it.
FETCH_SLACK = 1.0
# The README: issuer processes pick up a revocation within a second; verifiers that
# cached the JWKS accept the key until they refetch (Neon: after about 5 minutes).
DOCUMENTED_BOUND = RING_REFRESH + AUTO_RENEW + FETCH_SLACK


def wait_until_proxy_holds_next(
    deployment: Deployment, published_at: float, changed_at: float | None = None
) -> str:
    """Wait until `next` may safely sign (see the module docstring); return the JWKS ETag.

    The ETag is read once every issuer worker has seen the ring's last change
    (`changed_at`: a prune after the rotation, which on a busy machine commits
    close to a second later): read earlier, a worker could still answer with the
    set before the prune, which the proxy will then never fetch."""
    settled = max(published_at, changed_at or published_at) + RING_REFRESH
    time.sleep(max(0.0, settled - time.time()))
    etag = deployment.jwks_etag()
    deadline = time.monotonic() + 4 * AUTO_RENEW + 30  # generous: CI machines are busy
    while time.monotonic() < deadline:
        old_enough = time.time() >= published_at + RING_REFRESH + AUTO_RENEW
        if old_enough and deployment.proxy_fetches(etag) >= 1:
            return etag
        time.sleep(0.1)
    log = deployment.access_log.read_text()[-2000:] if deployment.access_log.exists() else ""
    # Not the audit lines (every token writes one): what a worker said about its ring.
    issuer_log = "\n".join(
        line
        for line in (deployment.root / "issuer.log").read_text().splitlines()
        if not line.startswith('{"ts"')
    )[-3000:]
    raise AssertionError(
        f"the proxy never fetched the JWKS {etag} in time; access log:\n{log}\n"
        f"issuer log (a worker that failed to reload says so):\n{issuer_log}"
    )


class Hammer(threading.Thread):
    """Presents one token to the proxy over and over, each time on a new connection
    (so that every proxy worker sees it), and records what the proxy answered;
    until stopped, or until one second before the token expires."""

    def __init__(self, deployment: Deployment, token: str) -> None:
        super().__init__(name="hammer", daemon=True)
        self.deployment, self.token = deployment, token
        self.until = token_claims(token)["exp"] - 1
        self.answers: list[tuple[float, int, str]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set() and time.time() < self.until:
            response = sql(None, self.deployment.sql_url, self.token, "select auth.user_id() as s")
            self.answers.append((time.time(), response.status_code, response.text))
            self.done.wait(0.02)

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=HTTP_TIMEOUT + 5)


def test_rotations_under_live_traffic_reject_no_valid_token(
    deploy: Callable[..., Deployment], neon_db: LocalDatabase
) -> None:
    """Clients keep getting tokens and querying while the ring is rotated and pruned
    as an operator would: not one request fails, tokens of retired keys keep working
    until they expire, pruned keys leave the JWKS, no acknowledged write is lost."""
    deployment = deploy(neon_db, token_ttl=TOKEN_TTL)
    deployment.start_issuer()
    deployment.start_proxy()
    *credentials, canary_client = deployment.register_clients(CLIENTS + 1)
    actives = [next(k["kid"] for k in deployment.list_keys() if k["state"] == "active")]
    # The worst case for a retiring key: a token it signed just before the rotation,
    # used until it expires.
    canaries: list[Hammer] = []
    retired_at: dict[str, float] = {}
    pruned: list[str] = []
    published_at = changed_at = time.time()  # `keys init` published the first next key

    with Traffic(deployment, credentials) as traffic:
        for _ in range(ROTATIONS):
            wait_until_proxy_holds_next(deployment, published_at, changed_at)
            canaries.append(Hammer(deployment, get_token(deployment, canary_client)))
            canaries[-1].start()
            out = deployment.cli("keys", "rotate", "--force")
            published_at = retired_at[actives[-1]] = deployment.committed_at()
            actives.append(out.split("active  ")[1].split()[0])
            # As cron would run it right after each rotation.
            out = deployment.cli("keys", "prune")
            pruned += [line.split()[1] for line in out.splitlines() if line.startswith("pruned")]
            changed_at = deployment.committed_at()
        # Let the last promoted key sign for a while too.
        time.sleep(RING_REFRESH + 1.5)
        for canary in canaries:
            canary.join(timeout=TOKEN_TTL + HTTP_TIMEOUT)
    tally = traffic.tally
    out = deployment.cli("keys", "prune")
    pruned += [line.split()[1] for line in out.splitlines() if line.startswith("pruned")]
    now = time.time()
    overdue = [k["kid"] for k in deployment.list_keys() if (k["prunable_at"] or now) < now - 1]

    retired_then_used = [
        kid for kid, when in retired_at.items() if tally.last_accepted.get(kid, 0) > when
    ]
    print(
        f"\nrotation under traffic: {CLIENTS} clients, {ROTATIONS} rotations, "
        f"{len(pruned)} keys pruned, {tally.tokens} tokens, {tally.queries} queries "
        f"({sum(map(len, tally.acked.values()))} inserts), {len(tally.failures)} failures, "
        f"tokens per active key {[tally.kids_issued[kid] for kid in actives]}, "
        f"keys used after retirement {len(retired_then_used)}, "
        f"proxy JWKS fetches {deployment.proxy_fetches()}, canary probes "
        f"{sum(len(c.answers) for c in canaries)}"
    )
    assert tally.failures == []
    for canary, kid in zip(canaries, actives, strict=False):
        assert token_header(canary.token)["kid"] == kid
        assert [a for a in canary.answers if a[1] != 200] == [], kid
        # ...and it was still in use a whole JWKS refresh period after the rotation.
        assert canary.answers[-1][0] > retired_at[kid] + AUTO_RENEW, kid
    # The traffic really did straddle every rotation, with every key in every role.
    assert all(tally.kids_issued[kid] > 0 for kid in actives), tally.kids_issued
    assert set(tally.kids_issued) == set(actives)
    assert len(retired_then_used) >= ROTATIONS // 2, retired_then_used
    assert tally.queries >= 50 * ROTATIONS
    # Retired keys were pruned on schedule and disappeared from the JWKS.
    assert pruned, "no retired key became prunable during the run"
    assert overdue == []
    assert set(pruned) <= set(actives[:-1])
    assert not set(pruned) & deployment.published_kids()
    assert deployment.proxy_fetches() >= ROTATIONS
    tally.assert_writes_kept(deployment.database)


def test_emergency_revoke_unpublishes_the_key_and_every_proxy_worker_refuses_it_in_time(
    deploy: Callable[..., Deployment], neon_db: LocalDatabase
) -> None:
    """`keys revoke KID --yes` on the active key, under traffic: the issuer stops
    publishing it within its one-second reload, and the proxy refuses its tokens
    once its JWKS cache has been refreshed; tokens of the promoted key never fail."""
    # Tokens outlive the whole measurement, so only the revocation can refuse them.
    deployment = deploy(neon_db, token_ttl=120)
    deployment.start_issuer()
    deployment.start_proxy()
    credentials = deployment.register_clients(3)
    leaker = credentials.pop()

    with Traffic(deployment, credentials) as traffic:
        wait_until_proxy_holds_next(deployment, published_at=time.time() - RING_REFRESH)
        token = get_token(deployment, leaker)
        leaked = token_header(token)["kid"]  # the active key
        hammer = Hammer(deployment, token)
        hammer.start()
        wait_for(lambda: any(status == 200 for _, status, _ in hammer.answers), 5)
        started = time.time()
        out = deployment.cli("keys", "revoke", leaked, "--yes")
        assert f"revoked {leaked}" in out
        committed = deployment.committed_at()
        unpublished = wait_for(lambda: leaked not in deployment.published_kids(), 5)
        # Keep watching well past the bound: an acceptance after it is a failure.
        time.sleep(max(0.0, committed + DOCUMENTED_BOUND + 2 - time.time()))
        hammer.stop()
    tally = traffic.tally

    accepted = [at for at, status, _ in hammer.answers if status == 200]
    refused = [(at, status, text) for at, status, text in hammer.answers if at > accepted[-1]]
    print(
        f"\nemergency revoke: the issuer's JWKS dropped the key "
        f"{unpublished - committed:.2f} s after the manifest was committed, the proxy last "
        f"accepted it {accepted[-1] - committed:.2f} s after (README's bound "
        f"{DOCUMENTED_BOUND:.1f} s), "
        f"{len(hammer.answers)} probes; traffic "
        f"{tally.tokens} tokens, {tally.queries} queries, {len(tally.failures)} refused "
        f"with the revoked key"
    )
    assert started <= committed
    assert unpublished - committed <= RING_REFRESH + FETCH_SLACK
    # The validated-token cache never extends a revoked key's life.
    assert accepted[-1] - committed <= DOCUMENTED_BOUND
    assert len(refused) >= 50
    assert {status for _, status, _ in refused} == {400}
    assert all('"jwk not found"' in text for _, _, text in refused), refused[0]
    # Only tokens of the revoked key failed, and only after the revocation.
    assert all(f.kid == leaked and f.at >= committed for f in tally.failures), tally.failures[:3]
    assert set(tally.kids_issued) - {leaked}, "the promoted key signed nothing"
