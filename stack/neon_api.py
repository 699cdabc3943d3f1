"""The part of Neon's public API that registers an issuer's JWKS with a project.

`POST /projects/{project_id}/jwks` (`jwks_url`, `provider_name`, `jwt_audience`,
`branch_id`) and `GET /projects/{project_id}/jwks` (`{"jwks": [...]}`) at
https://console.neon.tech/api/v2, with `Authorization: Bearer <NEON_API_KEY>`
(Neon's API reference, "addProjectJWKS" / "getProjectJWKS"). `register` is
idempotent: it lists first, and posts only when the JWKS URL is not registered.
Tests run it against a stand-in of this API (`tests/support/neon_api.py`): Neon's
cloud is the one part this project fakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

DEFAULT_API_URL = "https://console.neon.tech/api/v2"
TIMEOUT = 30


class NeonAPIError(Exception):
    """Neon's API refused or could not be reached; the message says which and why."""


@dataclass(frozen=True)
class JwksRegistration:
    jwks_url: str
    provider_name: str
    audience: str
    branch_id: str | None = None


class NeonAPI:
    def __init__(self, api_key: str, api_url: str = DEFAULT_API_URL) -> None:
        self.api_url = api_url.rstrip("/")
        self._http = requests.Session()
        self._http.headers.update(
            {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        )

    def registered_jwks(self, project_id: str) -> list[dict[str, Any]]:
        body = self._call("GET", f"/projects/{project_id}/jwks")
        items = body.get("jwks") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise NeonAPIError("Neon's API answered the JWKS list with an unexpected body")
        return [item for item in items if isinstance(item, dict)]

    def register(self, project_id: str, wanted: JwksRegistration) -> tuple[dict[str, Any], bool]:
        """The project's registration of `wanted.jwks_url`, and whether this call made it.

        A URL already registered with another audience is an error, not an update:
        changing what the database accepts is for the operator to do knowingly.
        """
        for item in self.registered_jwks(project_id):
            if item.get("jwks_url") != wanted.jwks_url:
                continue
            if item.get("jwt_audience") != wanted.audience:
                raise NeonAPIError(
                    f"{wanted.jwks_url} is registered with audience "
                    f"{item.get('jwt_audience')!r}, not {wanted.audience!r}: remove that "
                    "registration in Neon's console (or API) first"
                )
            return item, False
        payload: dict[str, Any] = {
            "jwks_url": wanted.jwks_url,
            "provider_name": wanted.provider_name,
            "jwt_audience": wanted.audience,
        }
        if wanted.branch_id:
            payload["branch_id"] = wanted.branch_id
        body = self._call("POST", f"/projects/{project_id}/jwks", json=payload)
        created = body.get("jwks", body) if isinstance(body, dict) else None
        if not isinstance(created, dict):
            raise NeonAPIError("Neon's API answered the registration with an unexpected body")
        return created, True

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = self.api_url + path
        try:
            response = self._http.request(method, url, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as error:
            raise NeonAPIError(f"cannot reach Neon's API at {self.api_url}: {error}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            message = body.get("message") if isinstance(body, dict) else None
            raise NeonAPIError(
                f"Neon's API refused {method} {path}: HTTP {response.status_code}"
                + (f": {message}" if message else "")
            )
        return body
