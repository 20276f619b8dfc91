"""Who may call the job API: bearer JWTs from a configured issuer, scopes, a per-client rate limit.

Modes (``AUTH_MODE``):

- ``jwt``: every ``/jobs`` request carries ``Authorization: Bearer <token>``, a JWT (OAuth2
  client-credentials access token) signed by a key in the issuer's JWKS (fetched over HTTPS from
  ``AUTH_JWKS_URL``, default ``<issuer>/.well-known/jwks.json``, and cached), with ``iss`` equal to
  ``AUTH_ISSUER``, not expired, and for ``AUTH_AUDIENCE``: its ``aud`` claim names it or, for
  Cognito access tokens (which carry no ``aud``), its scopes belong to that resource server
  (``<audience>/<scope>``). The client is the ``client_id`` claim (Cognito) or ``sub``.
- ``none``: no authentication (local mode by default; an internal, VPC-only load balancer; a dev
  stack that was told to be open). Every caller is the client ``anonymous`` with every scope.

Scopes (``AUTH_SCOPES`` JSON ``{"submit", "read", "readAny"}``, full scope strings): ``submit`` may
POST /jobs; ``read`` may GET the jobs this client submitted; ``readAny`` may GET any job.
``RATE_LIMIT_PER_CLIENT`` (requests per second, 0 = off) is a token bucket per client in each API
task; over it a request gets 429 with ``Retry-After``.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from jobfleet_contract import environment as names
from jobfleet_contract.environment import ConfigError, env_number

ANONYMOUS = "anonymous"
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384"]
JWKS_CACHE_SECONDS = 300
# Clock skew tolerated between the issuer and this task.
LEEWAY_SECONDS = 30
SCOPE_NAMES = ("submit", "read", "readAny")


class AuthError(Exception):
    """401 (no or bad token) or 403 (valid token without the scope); the reason says which."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason = status, error, reason


@dataclass(frozen=True)
class Caller:
    client_id: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class AuthSettings:
    mode: str = "none"
    issuer: str = ""
    audience: str = ""
    jwks_url: str = ""
    scopes: Mapping[str, str] = field(default_factory=dict)
    rate_limit_per_client: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in ("jwt", "none"):
            raise ConfigError(f"AUTH_MODE must be jwt or none, got {self.mode!r}")
        if self.mode == "jwt":
            required = (("AUTH_ISSUER", self.issuer), ("AUTH_AUDIENCE", self.audience))
            missing = [name for name, value in required if not value]
            if missing:
                raise ConfigError(f"AUTH_MODE=jwt needs {', '.join(missing)}")
            if sorted(self.scopes) != sorted(SCOPE_NAMES):
                raise ConfigError(f"AUTH_SCOPES must name exactly {', '.join(SCOPE_NAMES)}")

    @property
    def enabled(self) -> bool:
        return self.mode == "jwt"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AuthSettings:
        mode = env.get(names.AUTH_MODE, "none").strip() or "none"
        issuer = env.get(names.AUTH_ISSUER, "").strip().rstrip("/")
        raw_scopes = env.get(names.AUTH_SCOPES, "").strip()
        try:
            scopes = json.loads(raw_scopes) if raw_scopes else {}
        except ValueError as exc:
            raise ConfigError(f"AUTH_SCOPES is not JSON: {exc}") from None
        if not isinstance(scopes, dict) or not all(isinstance(v, str) and v for v in scopes.values()):
            raise ConfigError("AUTH_SCOPES must be a JSON object of scope names to scope strings")
        return cls(
            mode=mode,
            issuer=issuer,
            audience=env.get(names.AUTH_AUDIENCE, "").strip(),
            jwks_url=(env.get(names.AUTH_JWKS_URL, "").strip()
                      or (f"{issuer}/.well-known/jwks.json" if issuer else "")),
            scopes=scopes,
            rate_limit_per_client=env_number(env, names.RATE_LIMIT_PER_CLIENT, 0.0, minimum=0,
                                             maximum=100_000),
        )


class Authenticator:
    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings
        self._jwks = (jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=JWKS_CACHE_SECONDS,
                                      timeout=5)
                      if settings.enabled else None)

    def caller(self, authorization: str | None) -> Caller:
        if self._jwks is None:
            return Caller(ANONYMOUS, frozenset(self._settings.scopes.values()) | {"*"})
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(401, "unauthenticated", "send Authorization: Bearer <access token>")
        try:
            key = self._jwks.get_signing_key_from_jwt(token.strip())
            claims = jwt.decode(
                token.strip(), key.key, algorithms=ALGORITHMS, issuer=self._settings.issuer,
                leeway=LEEWAY_SECONDS, options={"require": ["exp", "iss"], "verify_aud": False},
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise AuthError(503, "unavailable",
                            f"the token issuer's keys cannot be fetched ({exc})") from None
        except (jwt.PyJWTError, ValueError) as exc:
            raise AuthError(401, "invalid-token", f"access token refused: {exc}") from None
        scopes = frozenset(str(claims.get("scope", "")).split())
        self._check_audience(claims, scopes)
        client = claims.get("client_id") or claims.get("sub")
        if not isinstance(client, str) or not client:
            raise AuthError(401, "invalid-token", "access token names no client (client_id or sub)")
        return Caller(client, scopes)

    def _check_audience(self, claims: Mapping[str, Any], scopes: frozenset[str]) -> None:
        audience = self._settings.audience
        aud = claims.get("aud")
        if aud is not None:
            names = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
            if audience in names:
                return
            raise AuthError(401, "invalid-token", f"access token is not for audience {audience!r}")
        # Cognito access tokens have no aud: their scopes are "<resource server id>/<scope>".
        if not scopes or not all(scope.startswith(f"{audience}/") for scope in scopes):
            raise AuthError(401, "invalid-token", f"access token is not for audience {audience!r}")

    def require(self, caller: Caller, scope_name: str) -> None:
        scope = self._settings.scopes.get(scope_name, scope_name)
        if "*" not in caller.scopes and scope not in caller.scopes:
            raise AuthError(403, "forbidden", f"this client lacks the {scope!r} scope")

    def may_read(self, caller: Caller, owner: str | None) -> bool:
        """A job is readable by the client that submitted it, or with the readAny scope."""
        if "*" in caller.scopes or self._settings.scopes.get("readAny") in caller.scopes:
            return True
        return owner == caller.client_id


class ClientRateLimit:
    """A token bucket per client (burst one second's worth, at least 1); 0 turns it off."""

    def __init__(self, rate_per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate_per_second
        self._burst = max(1.0, math.floor(rate_per_second))
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, updated)

    def retry_after(self, client: str) -> float:
        """0 when the request may go now (a token is taken), else seconds until one is free."""
        if self._rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, updated = self._buckets.get(client, (self._burst, now))
            tokens = min(self._burst, tokens + (now - updated) * self._rate)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            if len(self._buckets) > 10_000:  # bounded memory: idle clients refill to full anyway
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
            return (1 - tokens) / self._rate
