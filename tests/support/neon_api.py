"""A stand-in for the JWKS part of Neon's public API (Neon's cloud is the one part we fake).

It answers as the API reference describes `GET/POST /projects/{project_id}/jwks`:
a Bearer API key, `{"jwks": [...]}` lists, 201 with `{"jwks": {...}, "operations": []}`
on creation, HTTPS-only `jwks_url`, and remembers what it was asked.
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

        return app

    def serve(self) -> LiveServer:
        server = LiveServer()
        server.app = self.app()
        return server
