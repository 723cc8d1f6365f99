"""Rate-limit refusals user-srv answered, remembered per login triple until they end.

A flood of guesses at a locked account would otherwise cost user-srv a call each. The
key is exactly what user-srv budgeted the attempt on (user name, device id or "", client
address), so a remembered refusal refuses no one user-srv would have let through.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta

from micro.errors import Exhausted, ServiceError, rate_limited

# Triples remembered at once; the least recently refused go first beyond it.
MAX_ENTRIES = 4096

LoginKey = tuple[str, str, str]


class RateRefusals:
    def __init__(
        self, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_entries = max_entries
        self._clock = clock
        # key -> (the clock's time the refusal ends, user-srv's message)
        self._until: OrderedDict[LoginKey, tuple[float, str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._until)

    def check(self, key: LoginKey) -> None:
        """Raise the remembered refusal of key, with the wait left, while it lasts."""
        entry = self._until.get(key)
        if entry is None:
            return
        until, message = entry
        left = until - self._clock()
        if left <= 0:
            del self._until[key]
            return
        raise rate_limited(message, timedelta(seconds=left))

    def now(self) -> float:
        return self._clock()

    def remember(self, key: LoginKey, error: ServiceError, asked_at: float) -> None:
        """Keep a rate-limit refusal of key for its retry_after, counted from asked_at (the
        call's start: user-srv's wait began later, so this ends no later than its lock);
        other errors are not kept."""
        if error.cause is not Exhausted.RATE or error.retry_after is None:
            return
        now = self._clock()
        self._until[key] = (asked_at + error.retry_after.total_seconds(), error.message)
        self._until.move_to_end(key)
        # The oldest first: ended ones go, and beyond the bound the least recent too.
        while self._until:
            oldest_until, _ = next(iter(self._until.values()))
            if oldest_until > now and len(self._until) <= self._max_entries:
                break
            self._until.popitem(last=False)
