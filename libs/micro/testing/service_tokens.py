"""Service-account tokens made in a test: an issuer with its own ES256 keys, serving its
discovery document and JWKS at the API server's paths on a loopback HTTP server, and
projected-token claims as kube-apiserver writes them."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from micro.identity.issuer import DISCOVERY_PATH, JWKS_PATH

ISSUER = "https://kubernetes.default.svc.cluster.local"
CALLEE = "go-micro.token-srv"


class Issuer:
    """Signing keys made in the test, their JWKS and discovery document on a loopback
    HTTP server at the API server's paths; `down` answers 503 to everything."""

    def __init__(self) -> None:
        self.keys: dict[str, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey] = {}
        self.published: list[str] = []  # kids in the JWKS
        self.requests: Counter[str] = Counter()
        self.down = False
        self.add_key("key-1")
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests[self.path] += 1
                body = issuer.answer(self.path)
                status = 503 if issuer.down else 200 if body is not None else 404
                data = json.dumps(body if status == 200 else {"message": "no"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def add_key(self, kid: str, *, publish: bool = True, algorithm: str = "ES256") -> None:
        """A new ES256 (or RS256) key; unpublished, it signs tokens no JWKS lists."""
        self.keys[kid] = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if algorithm == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        if publish:
            self.published.append(kid)

    def answer(self, path: str) -> dict[str, Any] | None:
        if path == DISCOVERY_PATH:
            return {"issuer": ISSUER, "jwks_uri": "https://elsewhere.invalid/keys"}
        if path == JWKS_PATH:
            return {"keys": [self.jwk(kid) for kid in self.published]}
        return None

    def algorithm(self, kid: str) -> str:
        return "RS256" if isinstance(self.keys[kid], rsa.RSAPrivateKey) else "ES256"

    def jwk(self, kid: str) -> dict[str, Any]:
        key = self.keys[kid]
        public = json.loads(
            jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())
            if isinstance(key, rsa.RSAPrivateKey)
            else jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())
        )
        return {**public, "kid": kid, "use": "sig", "alg": self.algorithm(kid)}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def claims(
    *,
    namespace: str = "default",
    account: str = "admin-srv",
    pod: str = "admin-1",
    pod_uid: str = "",
    audience: str = CALLEE,
    lifetime_s: float = 600,
    bound: bool = True,
) -> dict[str, Any]:
    """A projected token's claims, as kube-apiserver writes them."""
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": ISSUER,
        "aud": [audience],
        "iat": now,
        "nbf": now,
        "exp": now + int(lifetime_s),
        "sub": f"system:serviceaccount:{namespace}:{account}",
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": {"name": account, "uid": str(uuid.uuid4())},
        },
    }
    if bound:
        body["kubernetes.io"]["pod"] = {"name": pod, "uid": pod_uid or str(uuid.uuid4())}
    return body


def sign(issuer: Issuer, body: dict[str, Any], kid: str = "key-1") -> str:
    return jwt.encode(body, issuer.keys[kid], algorithm=issuer.algorithm(kid), headers={"kid": kid})
