"""Revoked access tokens held in memory, kept current from a feed.

`RevokedTokens` is the set a `JwtVerifier` consults (micro.auth.RevocationList): token
ids with their expiry, forgotten once expired (an expired token is refused anyway).
`RevocationFeed` fills it from an issuer's feed: a snapshot (cursor 0), then long polls
from the last cursor. While the feed is down the last set is kept and the feed is asked
again with backoff: revocations made meanwhile count from the reconnection on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from micro.kube.backoff import Backoff

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RevocationPage:
    revoked: list[tuple[str, float]]  # (token id, its expiry in epoch seconds)
    cursor: int  # the next call's `after`
    more: bool  # a full page: ask again at once


# fetch(after, wait_seconds): the revocations after a cursor, waiting up to wait_seconds
# for one when there is none yet.
FetchRevocations = Callable[[int, float], Awaitable[RevocationPage]]


class RevokedTokens:
    """Token ids revoked before their expiry."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._expiry: dict[str, float] = {}
        self._clock = clock

    def __len__(self) -> int:
        return len(self._expiry)

    def add(self, revoked: Iterable[tuple[str, float]]) -> None:
        now = self._clock()
        self._expiry.update((jti, exp) for jti, exp in revoked if exp > now)

    def is_revoked(self, token_id: str) -> bool:
        return token_id in self._expiry

    def forget_expired(self) -> None:
        now = self._clock()
        for jti in [j for j, exp in self._expiry.items() if exp <= now]:
            del self._expiry[jti]


class RevocationFeed:
    """Follows a revocation feed into a RevokedTokens set until cancelled."""

    def __init__(
        self,
        fetch: FetchRevocations,
        tokens: RevokedTokens,
        *,
        wait: float = 0.5,
        backoff: Backoff | None = None,
    ) -> None:
        self._fetch = fetch
        self._tokens = tokens
        self._wait = wait
        self._backoff = backoff or Backoff(base=0.1, cap=5.0)
        self._cursor = 0
        self.synced = asyncio.Event()  # set once the first snapshot is in

    async def run(self) -> None:
        failing = False
        while True:
            try:
                page = await self._fetch(
                    self._cursor, 0.0 if not self.synced.is_set() else self._wait
                )
            except Exception as error:  # any failure: keep the set, ask again
                if not failing:
                    _log.warning(
                        "revocation feed unavailable, keeping %d: %s", len(self._tokens), error
                    )
                failing = True
                await asyncio.sleep(self._backoff.next_delay())
                continue
            if failing:
                _log.info("revocation feed back at cursor %d", self._cursor)
            failing = False
            self._backoff.reset()
            self._tokens.add(page.revoked)
            self._cursor = page.cursor
            if not page.more:
                self._tokens.forget_expired()
                self.synced.set()
