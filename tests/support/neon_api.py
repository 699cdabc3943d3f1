"""A stand-in for the JWKS and Data API parts of Neon's public API (Neon's cloud is
the one part we fake).

It answers as the API reference describes `GET/POST /projects/{project_id}/jwks`
(a Bearer API key, `{"jwks": [...]}` lists, 201 with `{"jwks": {...}, "operations": []}`
on creation, HTTPS-only `jwks_url`), `GET /projects/{project_id}/branches` and
`GET/POST /projects/{project_id}/branches/{branch_id}/data-api/{database_name}`
(404 until created; `url`, `status`, `settings`), and remembers what it was asked.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, jsonify, request

from tests.support.servers import LiveServer


@dataclass
class NeonAPIStandIn:
    api_key: str
    projects: set[str]
    registrations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Each project's branches: the first is the default.
    branches: tuple[str, ...] = ("br-main-100", "br-dev-200")
    # (project, branch, database) -> what the Data API was created with.
    data_apis: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    fail_with: int | None = None  # answer every call with this status (an outage)

    def app(self) -> Flask:
        app = Flask("neon-api-stand-in")
        ids = itertools.count(1)

        @app.before_request
        def _check() -> Any:
            self.calls.append((request.method, request.path))
            if self.fail_with is not None:
                return jsonify(message="internal error"), self.fail_with
            if request.headers.get("Authorization") != f"Bearer {self.api_key}":
                return jsonify(message="authorization failed"), 401
            return None

        @app.route("/api/v2/projects/<project_id>/jwks", methods=["GET", "POST"])
        def jwks(project_id: str) -> Any:
            if project_id not in self.projects:
                return jsonify(message="project not found"), 404
            listed = self.registrations.setdefault(project_id, [])
            if request.method == "GET":
                return jsonify(jwks=listed)
            body = request.get_json(silent=True) or {}
            url = body.get("jwks_url")
            if not isinstance(url, str) or not url.startswith("https://"):
                return jsonify(message="jwks_url must be an https URL"), 400
            if not body.get("provider_name"):
                return jsonify(message="provider_name is required"), 400
            entry = {
                "id": f"jwks-{next(ids)}",
                "project_id": project_id,
                "jwks_url": url,
                "provider_name": body["provider_name"],
                "jwt_audience": body.get("jwt_audience"),
                **({"branch_id": body["branch_id"]} if body.get("branch_id") else {}),
            }
            listed.append(entry)
            return jsonify(jwks=entry, operations=[]), 201

        @app.get("/api/v2/projects/<project_id>/branches")
        def branches(project_id: str) -> Any:
            if project_id not in self.projects:
                return jsonify(message="project not found"), 404
            listed = [
                {"id": branch, "project_id": project_id, "default": n == 0}
                for n, branch in enumerate(self.branches)
            ]
            return jsonify(branches=listed)

        @app.route(
            "/api/v2/projects/<project_id>/branches/<branch_id>/data-api/<database>",
            methods=["GET", "POST"],
        )
        def data_api(project_id: str, branch_id: str, database: str) -> Any:
            if project_id not in self.projects or branch_id not in self.branches:
                return jsonify(message="branch not found"), 404
            key = (project_id, branch_id, database)
            if request.method == "GET":
                if key not in self.data_apis:
                    return jsonify(message="data API not found"), 404
                host = f"ep-{branch_id}.apirest.c-2.us-east-2.aws.neon.tech"
                return jsonify(
                    url=f"https://{host}/{database}/rest/v1",
                    status="active",
                    settings={"db_anon_role": "anonymous", "db_schemas": ["public"]},
                )
            if key in self.data_apis:
                return jsonify(message="data API already exists"), 409
            body = request.get_json(silent=True) or {}
            if body.get("auth_provider") not in (None, "neon_auth", "external"):
                return jsonify(message="auth_provider must be neon_auth or external"), 400
            url = body.get("jwks_url")
            if body.get("auth_provider") == "external" and not (
                isinstance(url, str) and url.startswith("https://")
            ):
                return jsonify(message="jwks_url must be an https URL"), 400
            self.data_apis[key] = body
            return jsonify(operations=[]), 201

        return app

    def serve(self) -> LiveServer:
        server = LiveServer()
        server.app = self.app()
        return server
