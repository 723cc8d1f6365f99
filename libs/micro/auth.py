"""Access-token verification for protected gRPC methods and HTTP paths.

`JwtVerifier` checks a JWT against public keys from a JWKS provider (for example
token-srv's GetJwks), cached and refetched (rate-limited) when a token names an unknown
key id. The accepted algorithms are fixed per verifier; "none" is never accepted, and an
algorithm must match its key's type, so an HS256 token "signed" with a public RSA or
Ed25519 key is rejected. Issuer, audience, exp and nbf are checked with a small leeway.

`AccessPolicy` holds the protected prefixes (`ctx.protect(...)`); the servers call
`authenticate` for every call and put the answered `Principal` in a context variable
that handlers read with `current_principal()` / `require_principal()`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, Protocol

import grpc
import jwt
from pydantic import Field

from micro.config.model import Duration, Section
from micro.errors import ServiceError, unauthenticated, unavailable

Algorithm = Literal["EdDSA", "RS256", "HS256"]
# The JWK key type each accepted algorithm needs.
KEY_TYPE_BY_ALGORITHM: dict[str, str] = {"EdDSA": "OKP", "RS256": "RSA", "HS256": "oct"}

JwksProvider = Callable[[], Awaitable[list[dict[str, Any]]]]

_log = logging.getLogger(__name__)


def jwt_rule(exc: jwt.PyJWTError) -> str:
    """What a failed PyJWT decode says of the token, in the words every service answers
    with (the verifier here, and token-srv checking its own tokens)."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "not valid yet"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "wrong issuer"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "wrong audience"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "bad signature"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim}"
    return f"invalid ({exc})"


class AuthConfig(Section):
    """The `auth` section of a service that protects methods (services add it)."""

    issuer: str = "go-micro.token-srv"
    audience: tuple[str, ...] = ()  # empty: the aud claim is not checked
    algorithms: tuple[Algorithm, ...] = ("EdDSA",)
    leeway: Duration = timedelta(seconds=5)
    jwks_max_age: Duration = timedelta(minutes=5)  # refetch keys this often
    jwks_min_refetch_interval: Duration = timedelta(seconds=5)  # on unknown kid, at most
    required_claims: tuple[str, ...] = Field(default=("exp", "iat", "sub"))


@dataclass(frozen=True)
class Principal:
    """Who is calling, from a verified access token."""

    user_id: str
    user_name: str
    role: str
    platform: str
    token_id: str


_principal: ContextVar[Principal | None] = ContextVar("micro_principal", default=None)


def current_principal() -> Principal | None:
    """The principal of the current call, None on a public method."""
    return _principal.get()


def require_principal() -> Principal:
    """The principal of the current call; usable as a FastAPI dependency too."""
    principal = _principal.get()
    if principal is None:
        raise unauthenticated(None, "an access token is required")
    return principal


@contextmanager
def acting_as(principal: Principal | None) -> Iterator[None]:
    """Make `principal` the current call's principal inside the block."""
    token = _principal.set(principal)
    try:
        yield
    finally:
        _principal.reset(token)


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> Principal: ...


@dataclass(frozen=True)
class _Key:
    jwk: jwt.PyJWK
    key_type: str  # "OKP", "RSA", "oct"


class JwtVerifier:
    """Verifies JWT access tokens against a cached JWKS."""

    def __init__(
        self,
        jwks: JwksProvider,
        *,
        algorithms: Iterable[str],
        issuer: str,
        audience: Iterable[str] = (),
        leeway: timedelta = timedelta(seconds=5),
        max_age: timedelta = timedelta(minutes=5),
        min_refetch_interval: timedelta = timedelta(seconds=5),
        required_claims: Iterable[str] = ("exp", "iat", "sub"),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        allowed = tuple(dict.fromkeys(algorithms))
        unknown = [a for a in allowed if a not in KEY_TYPE_BY_ALGORITHM]
        if not allowed or unknown:
            raise ValueError(
                f"auth.algorithms: {unknown or 'none given'} not accepted "
                f"(use some of {sorted(KEY_TYPE_BY_ALGORITHM)})"
            )
        self._jwks = jwks
        self._algorithms = allowed
        self._issuer = issuer
        self._audience = tuple(audience)
        self._leeway = leeway
        self._max_age = max_age.total_seconds()
        self._min_refetch = min_refetch_interval.total_seconds()
        self._required = list(required_claims)
        self._clock = clock
        self._keys: dict[str, _Key] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_config(cls, jwks: JwksProvider, config: AuthConfig) -> JwtVerifier:
        return cls(
            jwks,
            algorithms=config.algorithms,
            issuer=config.issuer,
            audience=config.audience,
            leeway=config.leeway,
            max_age=config.jwks_max_age,
            min_refetch_interval=config.jwks_min_refetch_interval,
            required_claims=config.required_claims,
        )

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            # The whole family: PyJWT refuses a bad kid or crit with InvalidTokenError,
            # not only DecodeError, and either is the caller's mistake.
            raise unauthenticated(None, f"access token: malformed header ({exc})") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise unauthenticated(None, f"access token: algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        key = await self._key(kid if isinstance(kid, str) else None)
        if KEY_TYPE_BY_ALGORITHM[alg] != key.key_type or key.jwk.algorithm_name != alg:
            raise unauthenticated(None, f"access token: algorithm {alg} does not fit its key")
        claims = self._decode(token, key.jwk, alg)
        return _principal_from(claims)

    def _decode(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        required = list(self._required)
        if self._issuer:
            required.append("iss")
        if self._audience:
            required.append("aud")
        try:
            return jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                issuer=self._issuer or None,
                audience=list(self._audience) or None,
                leeway=self._leeway,
                options={"require": required, "verify_aud": bool(self._audience)},
            )
        except jwt.PyJWTError as exc:
            raise unauthenticated(None, f"access token: {jwt_rule(exc)}") from None

    async def _key(self, kid: str | None) -> _Key:
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at >= self._max_age
        if stale or (self._lookup(kid) is None and self._may_refetch(now)):
            await self._refresh(now)
        key = self._lookup(kid)
        if key is None:
            raise unauthenticated(None, f"access token: unknown key id {kid!r}")
        return key

    def _lookup(self, kid: str | None) -> _Key | None:
        if kid is None:
            # A token without kid is accepted only when the choice is unambiguous.
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _may_refetch(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at >= self._min_refetch

    async def _refresh(self, now: float) -> None:
        async with self._lock:
            if self._fetched_at is not None and self._fetched_at >= now:
                return  # another call refreshed while this one waited
            try:
                documents = await self._jwks()
            except Exception as exc:
                if not self._keys:
                    raise unavailable("token keys are unavailable") from exc
                _log.warning("jwks refresh failed, keeping %d cached keys", len(self._keys))
                self._fetched_at = self._clock()
                return
            self._keys = _parse_jwks(documents)
            self._fetched_at = self._clock()


def _parse_jwks(documents: Iterable[Mapping[str, Any]]) -> dict[str, _Key]:
    keys: dict[str, _Key] = {}
    for document in documents:
        # Protobuf-shaped JWKs carry empty strings for absent members.
        data = {k: v for k, v in document.items() if v not in ("", None)}
        kid = data.get("kid")
        if not isinstance(kid, str) or data.get("use", "sig") != "sig":
            continue
        try:
            keys[kid] = _Key(jwt.PyJWK(data), str(data.get("kty")))
        except jwt.PyJWKError as exc:
            _log.warning("jwks: skipping key %s: %s", kid, exc)
    return keys


def _principal_from(claims: Mapping[str, Any]) -> Principal:
    return Principal(
        user_id=str(claims.get("uid", "")),
        user_name=str(claims.get("user_name") or claims.get("sub", "")),
        role=str(claims.get("role", "")),
        platform=str(claims.get("platform", "")),
        token_id=str(claims.get("jti", "")),
    )


@dataclass(frozen=True)
class Rule:
    prefix: str
    roles: frozenset[str]

    def matches(self, target: str) -> bool:
        if not target.startswith(self.prefix):
            return False
        rest = target[len(self.prefix) :]
        return rest == "" or self.prefix.endswith("/") or rest.startswith("/")


def _normalize(target: str) -> str:
    return target if target.startswith("/") else "/" + target


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class AccessPolicy:
    """Which gRPC methods ("/pkg.Service/Method") and HTTP paths need a token."""

    def __init__(self) -> None:
        self._rules: list[Rule] = []
        self.verifier: TokenVerifier | None = None

    @property
    def empty(self) -> bool:
        return not self._rules

    def protect(self, prefix: str, *, roles: Iterable[str] = ()) -> None:
        """Require a valid access token (and, when given, one of `roles`) under prefix.

        A gRPC prefix is a full service or method name, with or without the leading
        slash ("admin_srv.v1.UserService", "/admin_srv.v1.AuthenticationService/GetMe");
        an HTTP prefix is a path ("/admin/v1/users"). Prefixes end on a "/" boundary.
        """
        self._rules.append(Rule(_normalize(prefix.rstrip("/") or "/"), frozenset(roles)))
        # The longest prefix decides, so a narrower rule can ask for other roles.
        self._rules.sort(key=lambda r: len(r.prefix), reverse=True)

    def rule_for(self, target: str) -> Rule | None:
        target = _normalize(target)
        return next((r for r in self._rules if r.matches(target)), None)

    async def authenticate(self, target: str, authorization: str | None) -> Principal | None:
        """The caller's principal for a protected target, None for a public one."""
        rule = self.rule_for(target)
        if rule is None:
            return None
        if self.verifier is None:
            raise unavailable("authentication is not configured")
        token = bearer_token(authorization)
        if token is None:
            raise unauthenticated(None, "missing bearer token in the authorization header")
        principal = await self.verifier.verify(token)
        if rule.roles and principal.role not in rule.roles:
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"role {principal.role or '(none)'!r} may not call {target}",
            )
        return principal
