"""The client is tested against the real proxy: its fixtures, shared with tests/proxy."""

from tests.proxy.conftest import ec_key, jwks_server, main_jwks, proxy, rsa_key

__all__ = ["ec_key", "jwks_server", "main_jwks", "proxy", "rsa_key"]
