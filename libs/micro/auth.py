"""Access-token verification for protected gRPC methods and HTTP paths.

`JwtVerifier` checks a JWT against public keys from a JWKS provider (for example
token-srv's GetJwks), cached in a micro.jwks.JwksCache (refetched, rate-limited, when a
token names an unknown key id). The accepted algorithms are fixed per verifier; issuer,
audience, exp and nbf are checked with a small leeway.

A verifier given a `RevocationList` (micro.revocation.RevokedTokens, kept current from
the issuer's feed) refuses a revoked token id too, without a call to the issuer.

`AccessPolicy` holds the protected prefixes (`ctx.protect(...)`); the servers call
`authenticate` for every call and put the answered `Principal` in a context variable
that handlers read with `current_principal()` / `require_principal()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
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
from micro.jwks import JwksCache, JwksProvider, KeyRefusal, KeysUnavailable, accepted_algorithms

Algorithm = Literal["EdDSA", "RS256", "HS256"]


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


class RevocationList(Protocol):
    """Token ids (jti) revoked before their expiry, answered from memory."""

    def is_revoked(self, token_id: str) -> bool: ...


class JwtVerifier:
    """Verifies JWT access tokens against a cached JWKS (micro.jwks)."""

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
        revocations: RevocationList | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._algorithms = accepted_algorithms(algorithms, "auth.algorithms")
        self._keys = JwksCache(
            jwks, max_age=max_age, min_refetch_interval=min_refetch_interval, clock=clock
        )
        self._issuer = issuer
        self._audience = tuple(audience)
        self._leeway = leeway
        self._required = list(required_claims)
        self._revocations = revocations

    @classmethod
    def from_config(
        cls, jwks: JwksProvider, config: AuthConfig, revocations: RevocationList | None = None
    ) -> JwtVerifier:
        return cls(
            jwks,
            algorithms=config.algorithms,
            issuer=config.issuer,
            audience=config.audience,
            leeway=config.leeway,
            max_age=config.jwks_max_age,
            min_refetch_interval=config.jwks_min_refetch_interval,
            required_claims=config.required_claims,
            revocations=revocations,
        )

    async def verify(self, token: str) -> Principal:
        try:
            key, alg = await self._keys.signing_key(token, self._algorithms)
        except KeyRefusal as refusal:
            raise unauthenticated(None, f"access token: {refusal}") from None
        except KeysUnavailable as exc:
            raise unavailable("token keys are unavailable") from exc
        claims = self._decode(token, key.jwk, alg)
        if self._revocations is not None and self._revocations.is_revoked(str(claims.get("jti"))):
            raise unauthenticated(None, "access token: revoked")
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
