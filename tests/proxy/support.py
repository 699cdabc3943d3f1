"""Test helpers for the proxy: signing keys, a JWKS server the tests control, proxy handles.

Every proxy is a real HTTP server on a loopback port (werkzeug in a thread; one
test runs gunicorn) in front of the session's embedded PostgreSQL, validating
tokens signed here against the JWKS served here.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from proxy.config import ProxyConfig
from proxy.rules import AuthRule
from stack.migrate import LocalDatabase

HTTP_TIMEOUT = 15


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


@dataclass
class SigningKey:
    """A private key the tests sign with, and the JWK that publishes it."""

    kid: str
    private: Any
    alg: str

    def jwk(self, **extra: Any) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            numbers = public.public_numbers()
            size = (public.curve.key_size + 7) // 8
            curve = {256: "P-256", 384: "P-384"}[public.curve.key_size]
            jwk = {
                "kty": "EC",
                "crv": curve,
                "x": b64(numbers.x.to_bytes(size, "big")),
                "y": b64(numbers.y.to_bytes(size, "big")),
            }
        else:
            numbers = public.public_numbers()
            jwk = {
                "kty": "RSA",
                "n": b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                "e": b64(numbers.e.to_bytes(3, "big")),
            }
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.alg, **extra}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        head = {"alg": self.alg, "typ": "JWT", "kid": self.kid, **header}
        head = {k: v for k, v in head.items() if v is not None}
        signing_input = f"{b64json(head)}.{b64json(claims)}".encode()
        return f"{signing_input.decode()}.{b64(self.signature(signing_input))}"

    def signature(self, data: bytes) -> bytes:
        if isinstance(self.private, rsa.RSAPrivateKey):
            return self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())
        bits = self.private.curve.key_size
        digest = hashes.SHA256() if bits == 256 else hashes.SHA384()
        r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(digest)))
        size = (bits + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def new_ec_key(kid: str | None = None, curve: ec.EllipticCurve | None = None) -> SigningKey:
    curve = curve or ec.SECP256R1()
    alg = "ES256" if curve.key_size == 256 else "ES384"
    return SigningKey(kid or f"ec-{uuid.uuid4().hex[:8]}", ec.generate_private_key(curve), alg)


class JwksServer:
    """Serves JWKS documents by path and remembers every path requested."""

    def __init__(self) -> None:
        self.documents: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                status, headers, body = outer.documents.get(self.path, (404, {}, b"{}"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def publish(self, path: str, *keys: SigningKey | dict[str, Any]) -> str:
        jwks = {"keys": [k if isinstance(k, dict) else k.jwk() for k in keys]}
        self.serve(path, 200, json.dumps(jwks).encode())
        return self.url(path)

    def serve(
        self, path: str, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.documents[path] = (
            status,
            {"Content-Type": "application/json", **(headers or {})},
            body,
        )

    def url(self, path: str) -> str:
        return self.base + path

    def count(self, path: str) -> int:
        return self.requests.count(path)


class Clock:
    """Real time plus an offset the test can move."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Proxy:
    """A running proxy and what a test needs to talk to it."""

    url: str
    app: Any
    config: ProxyConfig
    http: requests.Session = field(default_factory=requests.Session)

    @property
    def services(self) -> Any:
        return self.app.extensions["proxy"]

    def post(
        self,
        body: Any,
        token: str | None,
        *,
        role: str = "authenticated",
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> requests.Response:
        sent = {
            "Neon-Connection-String": f"postgresql://{role}@ep-test.localhost/neondb",
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token is not None else {}),
            **(headers or {}),
        }
        data = raw if raw is not None else json.dumps(body).encode()
        return self.http.post(self.url + "/sql", data=data, headers=sent, timeout=HTTP_TIMEOUT)

    def sql(self, token: str, query: str, params: list[Any] | None = None, **kw: Any) -> Any:
        response = self.post({"query": query, "params": params or []}, token, **kw)
        assert response.status_code == 200, response.text
        return response.json()


#: The endpoint hosts the tests' connection strings name.
ENDPOINT_HOSTS = frozenset(
    {
        "localhost",
        "127.0.0.1",
        "h",
        "ep-test.localhost",
        "ep-test-123.localhost",
        "ep-fuzz.localhost",
    }
)


def base_config(neon_db: LocalDatabase, jwks_url: str, **overrides: Any) -> ProxyConfig:
    config = ProxyConfig(
        database_host=str(neon_db.server.socket_dir),
        database_port=neon_db.server.port,
        admin_url=neon_db.owner_url,
        auth_rules=[
            AuthRule("test", jwks_url, None, ("authenticated", "anonymous", "authenticator"))
        ],
        pool_size=4,
        endpoint_hosts=ENDPOINT_HOSTS,
    )
    return replace(config, **overrides)


def claims_for(sub: str, lifetime: int = 600, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "iat": now, "nbf": now, "exp": now + lifetime, "iss": "test", **extra}
