"""The part of Neon's public API that registers an issuer's JWKS with a project
and enables the Data API on a branch.

At https://console.neon.tech/api/v2, with `Authorization: Bearer <NEON_API_KEY>`
(Neon's API reference):
- `POST /projects/{project_id}/jwks` (`jwks_url`, `provider_name`, `jwt_audience`,
  `branch_id`) and `GET /projects/{project_id}/jwks` (`{"jwks": [...]}`):
  "addProjectJWKS" / "getProjectJWKS";
- `GET /projects/{project_id}/branches` (`{"branches": [{"id", "default"}, ...]}`);
- `GET` / `POST /projects/{project_id}/branches/{branch_id}/data-api/{database_name}`
  ("getProjectBranchDataAPI" answers `url` and `status`; "createProjectBranchDataAPI"
  takes `auth_provider`, `jwks_url`, `provider_name`, `jwt_audience`,
  `add_default_grants`, `skip_auth_schema`).
Both steps are idempotent: they read first and create only what is missing.
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

    def default_branch(self, project_id: str) -> str:
        body = self._call("GET", f"/projects/{project_id}/branches")
        branches = body.get("branches") if isinstance(body, dict) else None
        if not isinstance(branches, list):
            raise NeonAPIError("Neon's API answered the branch list with an unexpected body")
        for branch in branches:
            if isinstance(branch, dict) and branch.get("default") and branch.get("id"):
                return str(branch["id"])
        raise NeonAPIError(f"project {project_id} has no default branch: set NEON_BRANCH_ID")

    def enable_data_api(
        self, project_id: str, branch_id: str, database: str, wanted: JwksRegistration
    ) -> tuple[str, bool]:
        """The Data API's URL for `database` on the branch, and whether this call enabled it.

        It is created for an external provider (our issuer's JWKS and audience), with
        neither Neon's default grants nor its auth schema: `sql/` installs
        pg_session_jwt and grants exactly what the policies need. One already enabled
        is left as it is (its provider is changed knowingly, in Neon's console).
        """
        path = f"/projects/{project_id}/branches/{branch_id}/data-api/{database}"
        existing = self._call("GET", path, missing_ok=True)
        if existing is not None:
            return self._data_api_url(existing), False
        self._call(
            "POST",
            path,
            json={
                "auth_provider": "external",
                "jwks_url": wanted.jwks_url,
                "provider_name": wanted.provider_name,
                "jwt_audience": wanted.audience,
                "add_default_grants": False,
                "skip_auth_schema": True,
            },
        )
        return self._data_api_url(self._call("GET", path)), True

    @staticmethod
    def _data_api_url(body: Any) -> str:
        url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url.startswith("https://"):
            raise NeonAPIError("Neon's API answered the Data API query with an unexpected body")
        return url

    def _call(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        url = self.api_url + path
        try:
            response = self._http.request(method, url, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as error:
            raise NeonAPIError(f"cannot reach Neon's API at {self.api_url}: {error}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code >= 400:
            message = body.get("message") if isinstance(body, dict) else None
            raise NeonAPIError(
                f"Neon's API refused {method} {path}: HTTP {response.status_code}"
                + (f": {message}" if message else "")
            )
        return body
