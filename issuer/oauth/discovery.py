"""OpenID Provider metadata (OpenID Connect Discovery 1.0, RFC 8414).

The document depends only on configuration, so it is serialised once per app.
"""

from __future__ import annotations

import json

from issuer.config import Config
from issuer.oauth.clients import SUPPORTED_GRANT_TYPES, SUPPORTED_SCOPES

CLAIMS_SUPPORTED = (
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "amr",
    "nonce",
    "at_hash",
    "email",
    "email_verified",
)


def provider_metadata(config: Config) -> dict[str, object]:
    base = config.issuer_url
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "userinfo_endpoint": f"{base}/userinfo",
        "revocation_endpoint": f"{base}/revoke",
        "end_session_endpoint": f"{base}/end-session",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(SUPPORTED_GRANT_TYPES),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "scopes_supported": list(SUPPORTED_SCOPES),
        "claims_supported": list(CLAIMS_SUPPORTED),
        "prompt_values_supported": ["none", "login", "consent"],
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": False,
    }


def metadata_body(config: Config) -> bytes:
    return json.dumps(provider_metadata(config), separators=(",", ":")).encode()
