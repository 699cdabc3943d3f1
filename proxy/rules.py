"""Auth rules: which JWKS URL vouches for which Postgres roles (Neon's per-role JWKS settings).

Rules come from a JSON file (`PROXY_AUTH_RULES_FILE`) holding a list of
`{"id", "jwks_url", "audience", "role_names"}` objects, or else from the
environment (`PROXY_JWKS_URL`, `PROXY_AUDIENCE`, `PROXY_ROLES`), which describes
one rule and defaults to the local issuer.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_JWKS_URL = "http://localhost:8001/.well-known/jwks.json"
# As Neon registers a JWKS by default: the user roles, and the Data API's connection role.
DEFAULT_ROLES = ("authenticated", "anonymous", "authenticator")


@dataclass(frozen=True)
class AuthRule:
    id: str
    jwks_url: str
    audience: str | None
    role_names: tuple[str, ...]


def rules_from_env(env: Mapping[str, str]) -> list[AuthRule]:
    path = env.get("PROXY_AUTH_RULES_FILE")
    if path:
        return rules_from_file(Path(path))
    roles = tuple(r.strip() for r in env.get("PROXY_ROLES", ",".join(DEFAULT_ROLES)).split(","))
    return [
        _rule(
            {
                "id": "default",
                "jwks_url": env.get("PROXY_JWKS_URL", DEFAULT_JWKS_URL),
                "audience": env.get("PROXY_AUDIENCE") or None,
                "role_names": [r for r in roles if r],
            }
        )
    ]


def rules_from_file(path: Path) -> list[AuthRule]:
    try:
        items = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read auth rules from {path}: {error}") from None
    if not isinstance(items, list) or not items:
        raise ValueError(f"{path}: expected a non-empty JSON array of auth rules")
    rules = [_rule(item) for item in items]
    if len({rule.id for rule in rules}) != len(rules):
        raise ValueError(f"{path}: auth rule ids must be unique")
    return rules


def _rule(item: Any) -> AuthRule:
    if not isinstance(item, dict):
        raise ValueError("an auth rule must be a JSON object")
    url, audience, roles = item.get("jwks_url"), item.get("audience"), item.get("role_names")
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"auth rule {item.get('id')!r}: jwks_url must be an http(s) URL")
    if audience is not None and not isinstance(audience, str):
        raise ValueError(f"auth rule {item.get('id')!r}: audience must be a string or null")
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
        raise ValueError(f"auth rule {item.get('id')!r}: role_names must be a list of names")
    return AuthRule(str(item.get("id") or url), url, audience, tuple(roles))
