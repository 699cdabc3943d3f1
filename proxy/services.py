"""The long-lived objects one proxy process shares between requests."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.config import ProxyConfig
from proxy.jwks import JwksCache
from proxy.jwt import TokenValidator
from proxy.pool import BackendSettings, Pools
from proxy.session import SessionKey
from proxy.watchdog import Watchdog


@dataclass
class Services:
    config: ProxyConfig
    session_key: SessionKey
    validator: TokenValidator
    jwks: JwksCache
    pools: Pools
    watchdog: Watchdog

    @classmethod
    def build(cls, config: ProxyConfig, session_key: SessionKey) -> Services:
        jwks = JwksCache(clock=config.clock)
        settings = BackendSettings(
            host=config.database_host,
            port=config.database_port,
            statement_timeout_ms=config.statement_timeout_ms,
            pool_size=config.pool_size,
            pool_timeout=config.pool_timeout,
        )
        return cls(
            config=config,
            session_key=session_key,
            validator=TokenValidator(
                config.auth_rules,
                jwks,
                clock=config.clock,
                max_token_bytes=config.max_token_bytes,
            ),
            jwks=jwks,
            pools=Pools(settings),
            watchdog=Watchdog(),
        )

    def close(self) -> None:
        self.pools.close()
