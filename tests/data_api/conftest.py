"""The local Data API behind a real proxy, and Supabase's PostgREST client pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from postgrest import SyncPostgrestClient

from tests.proxy.conftest import ec_key, jwks_server, main_jwks, proxy, rsa_key
from tests.proxy.support import Proxy, SigningKey, claims_for

__all__ = ["ec_key", "jwks_server", "main_jwks", "proxy", "rsa_key"]

Client = Callable[..., SyncPostgrestClient]


@pytest.fixture
def rest(proxy: Proxy, ec_key: SigningKey) -> Iterator[Client]:
    """`rest(sub)`: a postgrest-py client with a database token for `sub` (role
    `authenticated`, as the issuer mints them); `rest(sub, role=None)` without a role."""
    opened: list[SyncPostgrestClient] = []

    def make(sub: str, **claims: object) -> SyncPostgrestClient:
        token_claims = claims_for(sub) | {"role": "authenticated"} | claims
        token_claims = {k: v for k, v in token_claims.items() if v is not None}
        client = SyncPostgrestClient(
            f"{proxy.url}/neondb/rest/v1",
            headers={"Authorization": f"Bearer {ec_key.sign(token_claims)}"},
        )
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.aclose()  # the sync client's name for closing its session
