"""Public signing keys from a JWKS, cached, for every JWT verifier of the framework.

`JwksCache` holds the keys of one issuer: it fetches them when they are older than
max_age, and again when a token names an unknown key id, but at most once per
min_refetch_interval so that forged kids cannot turn into a flood of fetches. A failed
fetch keeps the last good keys (an issuer outage must not refuse tokens it signed).
`signing_key` reads a token's header and finds the key that may verify it: the
algorithm must be one the verifier accepts and fit the key's type, so an HS256 token
"signed" with a public key is refused; "none" is never accepted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt

# The JWK key type each accepted algorithm needs.
KEY_TYPE_BY_ALGORITHM: dict[str, str] = {
    "EdDSA": "OKP",
    "RS256": "RSA",
    "ES256": "EC",
    "HS256": "oct",
}

JwksProvider = Callable[[], Awaitable[list[dict[str, Any]]]]

_log = logging.getLogger(__name__)


class KeysUnavailable(Exception):
    """No keys were ever fetched, and the fetch fails."""


class KeyRefusal(Exception):
    """The token names no usable key; the message says why, never the token, and
    `reason` labels it: "malformed", "algorithm" or "unknown_key"."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class SigningKey:
    jwk: jwt.PyJWK
    key_type: str  # "OKP", "RSA", "EC", "oct"


def accepted_algorithms(algorithms: Iterable[str], field: str) -> tuple[str, ...]:
    """The algorithms, deduplicated; a ValueError naming `field` for none or unknown ones."""
    allowed = tuple(dict.fromkeys(algorithms))
    unknown = [a for a in allowed if a not in KEY_TYPE_BY_ALGORITHM]
    if not allowed or unknown:
        raise ValueError(
            f"{field}: {unknown or 'none given'} not accepted "
            f"(use some of {sorted(KEY_TYPE_BY_ALGORITHM)})"
        )
    return allowed


class JwksCache:
    """The keys of one issuer by key id, fetched through `fetch` (see the module doc)."""

    def __init__(
        self,
        fetch: JwksProvider,
        *,
        max_age: timedelta = timedelta(minutes=5),
        min_refetch_interval: timedelta = timedelta(seconds=5),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_age = max_age.total_seconds()
        self._min_refetch = min_refetch_interval.total_seconds()
        self._clock = clock
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at: float | None = None  # the last good fetch
        self._tried_at: float | None = None  # the last fetch, good or not
        self._last_error: str | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0  # fetch attempts, for tests and diagnostics

    async def signing_key(self, token: str, algorithms: tuple[str, ...]) -> tuple[SigningKey, str]:
        """(the key, the algorithm) to verify `token` with; KeyRefusal or KeysUnavailable."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            # The whole family: PyJWT refuses a bad kid or crit with InvalidTokenError,
            # not only DecodeError, and either is the caller's mistake.
            raise KeyRefusal(f"malformed header ({exc})", "malformed") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in algorithms:
            raise KeyRefusal(f"algorithm {alg!r} is not accepted", "algorithm")
        kid = header.get("kid")
        key = await self.key(kid if isinstance(kid, str) else None)
        if KEY_TYPE_BY_ALGORITHM[alg] != key.key_type or key.jwk.algorithm_name != alg:
            raise KeyRefusal(f"algorithm {alg} does not fit its key", "algorithm")
        return key, alg

    async def key(self, kid: str | None) -> SigningKey:
        now = self._clock()
        due = self._fetched_at is None or now - self._fetched_at >= self._max_age
        if self._may_try(now) and (due or self._lookup(kid) is None):
            await self._refresh(now)
        if not self._keys:
            raise KeysUnavailable(self._last_error or "no keys published")
        key = self._lookup(kid)
        if key is None:
            raise KeyRefusal(f"unknown key id {kid!r}", "unknown_key")
        return key

    def _lookup(self, kid: str | None) -> SigningKey | None:
        if kid is None:
            # A token without kid is accepted only when the choice is unambiguous.
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _may_try(self, now: float) -> bool:
        # Failed tries count too, so an outage is not hammered by every call.
        return self._tried_at is None or now - self._tried_at >= self._min_refetch

    async def _refresh(self, now: float) -> None:
        async with self._lock:
            if self._tried_at is not None and self._tried_at >= now:
                return  # another call fetched while this one waited
            self.fetches += 1
            try:
                documents = await self._fetch()
            except Exception as exc:
                self._last_error = str(exc) or type(exc).__name__
                if self._keys:
                    _log.warning(
                        "jwks refresh failed, keeping %d cached keys: %s",
                        len(self._keys),
                        self._last_error,
                    )
                return
            finally:
                self._tried_at = self._clock()
            self._keys = parse_jwks(documents)
            self._last_error = None
            self._fetched_at = self._tried_at


def parse_jwks(documents: Iterable[Mapping[str, Any]]) -> dict[str, SigningKey]:
    keys: dict[str, SigningKey] = {}
    for document in documents:
        # Protobuf-shaped JWKs carry empty strings for absent members.
        data = {k: v for k, v in document.items() if v not in ("", None)}
        kid = data.get("kid")
        if not isinstance(kid, str) or data.get("use", "sig") != "sig":
            continue
        try:
            keys[kid] = SigningKey(jwt.PyJWK(data), str(data.get("kty")))
        except jwt.PyJWKError as exc:
            _log.warning("jwks: skipping key %s: %s", kid, exc)
    return keys
