"""Auth rules from a JSON file or the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy.rules import DEFAULT_JWKS_URL, AuthRule, rules_from_env


def test_defaults_point_at_the_local_issuer() -> None:
    assert rules_from_env({}) == [
        AuthRule("default", DEFAULT_JWKS_URL, None, ("authenticated", "anonymous", "authenticator"))
    ]
    assert DEFAULT_JWKS_URL == "http://localhost:8001/.well-known/jwks.json"


def test_environment_describes_one_rule() -> None:
    env = {
        "PROXY_JWKS_URL": "https://issuer.example/jwks.json",
        "PROXY_AUDIENCE": "todo-app",
        "PROXY_ROLES": "authenticated, ",
    }
    assert rules_from_env(env) == [
        AuthRule("default", "https://issuer.example/jwks.json", "todo-app", ("authenticated",))
    ]


def test_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(
        json.dumps(
            [
                {"id": "a", "jwks_url": "http://a/jwks", "role_names": ["authenticated"]},
                {
                    "id": "b",
                    "jwks_url": "https://b/jwks",
                    "audience": "x",
                    "role_names": ["anonymous"],
                },
            ]
        )
    )
    rules = rules_from_env({"PROXY_AUTH_RULES_FILE": str(path), "PROXY_JWKS_URL": "ignored"})
    assert [(r.id, r.audience, r.role_names) for r in rules] == [
        ("a", None, ("authenticated",)),
        ("b", "x", ("anonymous",)),
    ]


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"jwks_url": "http://a"}',
        '[{"jwks_url": "file:///etc/passwd", "role_names": ["authenticated"]}]',
        '[{"jwks_url": "http://a", "role_names": []}]',
        '[{"jwks_url": "http://a", "role_names": ["authenticated"], "audience": 3}]',
        '[{"id": "x", "jwks_url": "http://a", "role_names": ["r"]}, {"id": "x", "jwks_url": "http://b", "role_names": ["r"]}]',
    ],
)
def test_bad_rules_files_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "rules.json"
    path.write_text(content)
    with pytest.raises(ValueError):
        rules_from_env({"PROXY_AUTH_RULES_FILE": str(path)})
    with pytest.raises(ValueError):
        rules_from_env({"PROXY_AUTH_RULES_FILE": str(tmp_path / "missing.json")})
