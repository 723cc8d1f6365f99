"""What token-srv does, independent of gRPC: issue, verify, refresh and revoke tokens."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from micro.auth import jwt_rule
from micro.errors import ServiceError, invalid_argument, unauthenticated
from micro.idempotency import Once
from token_srv.config import JwtConfig
from token_srv.domain import (
    PLATFORMS,
    ROLES,
    RefreshRecord,
    Subject,
    TokenPair,
    refresh_token_hash,
)
from token_srv.keys import KeyRing
from token_srv.repository import RevocationEntry, Rotation, TokenRepository

# Claims every access token carries; a token missing one is refused.
REQUIRED_CLAIMS = ["sub", "uid", "iat", "nbf", "exp", "iss", "aud", "jti"]
PURGE_EVERY_SECONDS = 60.0
# A waiting ListRevocations looks at the database this often: the largest share of the
# time a revocation takes to reach the watchers.
REVOCATION_POLL_SECONDS = 0.1
REVOCATION_PAGE = 500


@dataclass(frozen=True)
class RevocationPage:
    entries: list[RevocationEntry]
    cursor: int  # the watcher's next `after`
    more: bool  # the page was full


@dataclass(frozen=True)
class JwtSettings:
    """The jwt section with its keys parsed: swapped whole when the config changes."""

    cfg: JwtConfig
    keys: KeyRing

    @classmethod
    def load(cls, cfg: JwtConfig, data_dir: str) -> JwtSettings:
        return cls(cfg, KeyRing.from_config(cfg, data_dir))


class JwtSettingsHolder:
    """The current JwtSettings: compose swaps them whole when the jwt section changes, so
    keys are parsed on a change, never per call."""

    def __init__(self, settings: JwtSettings) -> None:
        self.current = settings

    def __call__(self) -> JwtSettings:
        return self.current


class TokenUseCases:
    def __init__(
        self,
        tokens: TokenRepository,
        settings: Callable[[], JwtSettings],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tokens = tokens
        self._settings = settings
        self._clock = clock
        self._last_purge = 0.0

    async def generate(self, subject: Subject, once: Once[TokenPair] | None = None) -> TokenPair:
        """A new session's pair; `once` (a keyed call) commits its outcome with the session."""
        if not subject.user_id:
            raise invalid_argument("userId", "must not be empty")
        if not subject.user_name or len(subject.user_name) > 64:
            raise invalid_argument("userName", "must be 1-64 characters")
        if subject.role not in ROLES:
            raise invalid_argument("role", f"must be one of {', '.join(ROLES)}")
        if subject.platform not in PLATFORMS:
            raise invalid_argument("platform", f"must be one of {', '.join(PLATFORMS)}")
        await self._purge_now_and_then()
        started_at = self._now()
        pair, record = self._issue(subject, uuid.uuid4().hex, started_at)
        await self._tokens.start_session(
            record, started_at, None if once is None else once.mapped(lambda _: pair)
        )
        return pair

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid, unrevoked access token."""
        if not token:
            raise invalid_argument("token", "must not be empty")
        claims = self._decode(token, field="token")
        if await self._tokens.is_access_revoked(str(claims["jti"])):
            raise unauthenticated("token", "revoked")
        return claims

    async def refresh(
        self, refresh_token: str, once: Once[tuple[TokenPair, Subject]] | None = None
    ) -> tuple[TokenPair, Subject]:
        """The successor pair; `once` (a keyed call) commits its outcome with the
        rotation, so that a repeat of it is answered, not taken for reuse."""
        if not refresh_token:
            raise invalid_argument("refreshToken", "must not be empty")
        token_hash = refresh_token_hash(refresh_token)
        record = await self._tokens.find_refresh(token_hash)
        now = self._now()
        if record is None or record.revoked_at is not None or record.expires_at <= now:
            raise unauthenticated("refreshToken", "invalid, expired or revoked")
        started_at = await self._tokens.session_start(record.family_id)
        lifetime = self._settings().cfg.session_lifetime
        if started_at is None or started_at + lifetime <= now:
            raise unauthenticated("refreshToken", "the session has ended; log in again")
        pair, successor = self._issue(record.subject, record.family_id, started_at)

        def answer(rotation: Rotation) -> tuple[TokenPair, Subject] | ServiceError:
            return (pair, record.subject) if rotation is Rotation.ROTATED else _refusal(rotation)

        # Spending and storing the successor commit together (repository.rotate).
        keyed = None if once is None else once.mapped(answer)
        outcome = await self._tokens.rotate(token_hash, successor, now, now - lifetime, keyed)
        if outcome is not Rotation.ROTATED:
            raise _refusal(outcome)
        return pair, record.subject

    async def revoke(self, refresh_token: str, access_token: str) -> None:
        """Logout: end the refresh token's session whatever the access token is, then
        revoke the access token when it is a valid one."""
        if not refresh_token and not access_token:
            raise invalid_argument("refreshToken", "refreshToken or accessToken must be set")
        if refresh_token:
            record = await self._tokens.find_refresh(refresh_token_hash(refresh_token))
            # Unknown tokens are not an error: logging out twice is fine.
            if record is not None:
                await self._tokens.revoke_family(record.family_id, self._now())
        if not access_token:
            return
        try:
            claims = self._decode(access_token, field="accessToken")
        except ServiceError:
            # Expired or forged: nothing to revoke. Alone, it is the caller's error.
            if not refresh_token:
                raise
            return
        expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
        await self._tokens.revoke_access(str(claims["jti"]), expires)

    async def revocations(self, after: int, wait: float) -> RevocationPage:
        """Revocations numbered above `after`; with none, look again until `wait` seconds
        have passed. Read from the database, so a revocation through any replica shows."""
        if after < 0:
            raise invalid_argument("after", "must not be negative")
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            entries = await self._tokens.revocations_after(after, self._now(), REVOCATION_PAGE)
            left = deadline - time.monotonic()
            if entries or left <= 0:
                break
            await asyncio.sleep(min(REVOCATION_POLL_SECONDS, left))
        cursor = entries[-1].seq if entries else after
        return RevocationPage(entries, cursor, more=len(entries) == REVOCATION_PAGE)

    def jwks(self) -> list[dict[str, str]]:
        return self._settings().keys.jwks

    def _issue(
        self, subject: Subject, family_id: str, started_at: datetime
    ) -> tuple[TokenPair, RefreshRecord]:
        """A signed pair and the record of its refresh token, which the caller stores; the
        refresh token never outlives the session."""
        settings = self._settings()
        cfg = settings.cfg
        now = int(self._clock())
        access_ttl = int(cfg.access_ttl.total_seconds())
        session_end = int((started_at + cfg.session_lifetime).timestamp())
        refresh_ttl = max(0, min(int(cfg.refresh_ttl.total_seconds()), session_end - now))
        claims = {
            "sub": subject.user_name,
            "uid": subject.user_id,
            "user_name": subject.user_name,
            "platform": subject.platform,
            "role": subject.role,
            "iat": now,
            "nbf": now,
            "exp": now + access_ttl,
            "iss": cfg.issuer,
            "aud": list(cfg.audience),
            "jti": uuid.uuid4().hex,
        }
        refresh_token = secrets.token_urlsafe(32)
        record = RefreshRecord(
            token_hash=refresh_token_hash(refresh_token),
            family_id=family_id,
            subject=subject,
            expires_at=datetime.fromtimestamp(now + refresh_ttl, UTC),
        )
        pair = TokenPair(settings.keys.sign(claims), refresh_token, access_ttl, refresh_ttl)
        return pair, record

    def _decode(self, token: str, field: str, verify_exp: bool = True) -> dict[str, Any]:
        settings = self._settings()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthenticated(field, "not a JWT") from None
        key = settings.keys.verifying_key(str(header.get("kid", "")))
        if key is None:
            raise unauthenticated(field, "signed with an unknown key")
        try:
            # Only the algorithm of the key the kid names: never "none", never HS256 with
            # a public key.
            claims: dict[str, Any] = jwt.decode(
                token,
                key.verifying_key,
                algorithms=[key.alg],
                audience=list(settings.cfg.audience),
                issuer=settings.cfg.issuer,
                leeway=settings.cfg.leeway,
                options={"require": REQUIRED_CLAIMS, "verify_exp": verify_exp},
            )
        except jwt.PyJWTError as exc:
            raise unauthenticated(field, jwt_rule(exc)) from None
        return claims

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def _purge_now_and_then(self) -> None:
        now = self._clock()
        if now - self._last_purge >= PURGE_EVERY_SECONDS:
            self._last_purge = now
            await self._tokens.purge_expired(self._now() - timedelta(seconds=1))


def _refusal(rotation: Rotation) -> ServiceError:
    """Why a rotation stored no successor, as the caller sees it."""
    if rotation is Rotation.REUSED:
        return unauthenticated("refreshToken", "already used; the session is revoked")
    return unauthenticated("refreshToken", "the session has ended; log in again")
