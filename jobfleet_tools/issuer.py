"""A bearer-token issuer on this machine, standing in for Cognito: an RSA key generated per instance,
its JWKS served over HTTP on 127.0.0.1 at ``<url>/.well-known/jwks.json`` (where worker.auth looks
when ``AUTH_JWKS_URL`` is unset), and a mint of RS256 access tokens whose ``iss`` is ``<url>``.

Used by the image smoke run (the API container verifies its tokens against it) and by the API's
auth tests. A token without ``aud`` is shaped like a Cognito access token: the API then checks that
its scopes belong to the audience (``<audience>/<scope>``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

JWKS_PATH = "/.well-known/jwks.json"


class LocalIssuer:
    """Serves its JWKS until `close()` (or the end of a `with` block)."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex
        self.jwks_requests = 0  # how often the keys were fetched (the API caches them)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        body = json.dumps({"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}).encode()
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.jwks_requests += 1
                status = 200 if self.path == JWKS_PATH else 404
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body if status == 200 else b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def token(self, client: str, scopes: Iterable[str], *, aud: str | None = None, iss: str | None = None,
              expires_in: int = 300, key: Any = None, kid: str | None = None) -> str:
        """An access token of `client` with these full scope strings; the keyword arguments make
        tokens the API must refuse (another issuer or audience, expired, a foreign key or kid)."""
        now = int(time.time())
        claims: dict[str, Any] = {"iss": iss or self.url, "client_id": client, "token_use": "access",
                                  "scope": " ".join(scopes), "exp": now + expires_in, "iat": now}
        if aud is not None:
            claims["aud"] = aud
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LocalIssuer:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
