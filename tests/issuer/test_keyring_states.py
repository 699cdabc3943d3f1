"""Random sequences of key-ring operations never break the lifecycle's promises."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from joserfc.errors import InvalidKeyIdError

from issuer.keys import KeyRing, KeyState, RotationTooEarly
from issuer.tokens import mint_access_token
from tests.support.jose import verify_with_jwks

MIN_PUBLISHED, TTL, LEEWAY = 3900, 900, 30


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000

    def __call__(self) -> int:
        return self.now


class KeyRingMachine(RuleBasedStateMachine):
    """Drives a real on-disk ring; remembers every token minted and what must hold for it."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="keyring-states-"))
        self.clock = Clock()
        self.ring = KeyRing(self.directory / "keys", clock=self.clock, refresh_interval=0)
        self.gone: set[str] = set()  # pruned or revoked: must never be published again
        self.tokens: list[tuple[str, str, int]] = []  # (token, kid, exp)

    @initialize()
    def init(self) -> None:
        self.ring.init()

    @rule(seconds=st.sampled_from([1, 60, TTL, MIN_PUBLISHED, 10_000]))
    def wait(self, seconds: int) -> None:
        self.clock.now += seconds

    @rule()
    def mint(self) -> None:
        token = mint_access_token(
            self.ring, issuer="i", subject="s", audience=None, ttl=TTL, scope=None
        )
        self.tokens.append((token, self.ring.signing_key().kid, self.clock.now + TTL))

    @rule(force=st.booleans())
    def rotate(self, force: bool) -> None:
        following = self.ring.manifest().next
        early = self.clock.now - following.published_at < MIN_PUBLISHED
        try:
            self.ring.rotate(min_published=MIN_PUBLISHED, force=force)
        except RotationTooEarly:
            assert early and not force
        else:
            assert force or not early
            assert self.ring.signing_key().kid == following.kid

    @rule()
    def prune(self) -> None:
        before = {k.kid: k for k in self.ring.manifest().keys}
        for kid in self.ring.prune(max_token_lifetime=TTL, leeway=LEEWAY):
            key = before[kid]
            assert key.state is KeyState.REVOKED or (
                key.state is KeyState.RETIRED and self.clock.now >= key.retired_at + TTL + LEEWAY
            )
            self.gone.add(kid)

    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        candidates = [k.kid for k in self.ring.manifest().keys if k.state is not KeyState.REVOKED]
        kid = data.draw(st.sampled_from(candidates))
        self.ring.revoke(kid)
        self.gone.add(kid)

    @invariant()
    def one_active_one_next(self) -> None:
        manifest = self.ring.manifest()
        states = [k.state for k in manifest.keys]
        assert states.count(KeyState.ACTIVE) == 1 and states.count(KeyState.NEXT) == 1
        assert self.ring.signing_key().kid == manifest.active.kid

    @invariant()
    def jwks_is_exactly_the_published_keys(self) -> None:
        published = {k.kid for k in self.ring.manifest().keys if k.published}
        assert set(self.ring.jwks().kids) == published
        assert not published & self.gone

    @invariant()
    def tokens_verify_until_expiry_unless_their_key_was_withdrawn(self) -> None:
        body = self.ring.jwks().body
        for token, kid, exp in self.tokens:
            if kid in self.gone:
                try:
                    verify_with_jwks(token, body)
                except InvalidKeyIdError:
                    continue
                raise AssertionError(f"token of withdrawn key {kid} still verifies")
            if self.clock.now < exp + LEEWAY:
                verify_with_jwks(token, body)

    def teardown(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


TestKeyRingLifecycle = KeyRingMachine.TestCase
TestKeyRingLifecycle.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)
