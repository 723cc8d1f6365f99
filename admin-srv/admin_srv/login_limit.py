"""Failed-login counting per user name and per client address, in a sliding window."""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import timedelta

import grpc

from admin_srv.config import LoginLimitConfig
from micro.errors import Exhausted, ServiceError


class LoginThrottledError(ServiceError):
    """A rate limit (micro.errors.rate_limited: 429 / RESOURCE_EXHAUSTED) with the seconds
    until the next attempt may succeed; its own type so callers can tell it apart."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"too many failed logins: retry after {retry_after} s",
            retry_after=timedelta(seconds=retry_after),
            cause=Exhausted.RATE,
        )


class FailedLoginLimiter:
    def __init__(
        self, cfg: Callable[[], LoginLimitConfig], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._cfg = cfg
        self._clock = clock
        # Oldest-touched first, so the bound evicts the keys nobody has tried lately.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def check(self, user_name: str, address: str) -> None:
        """Raise LoginThrottledError when either key has used up its failures."""
        cfg = self._cfg()
        now = self._clock()
        waits = [
            self._wait(f"user:{user_name}", cfg.max_failures_per_user, now),
            self._wait(f"addr:{address}", cfg.max_failures_per_address, now),
        ]
        wait = max(waits)
        if wait > 0:
            raise LoginThrottledError(max(1, math.ceil(wait)))

    def record_failure(self, user_name: str, address: str) -> None:
        now = self._clock()
        for key in (f"user:{user_name}", f"addr:{address}"):
            times = self._failures.pop(key, None) or deque()
            times.append(now)
            self._failures[key] = times
        while len(self._failures) > self._cfg().max_tracked_keys:
            self._failures.popitem(last=False)

    def clear_user(self, user_name: str) -> None:
        """A successful login forgets the user's failures (not the address's)."""
        self._failures.pop(f"user:{user_name}", None)

    def _wait(self, key: str, limit: int, now: float) -> float:
        times = self._failures.get(key)
        if not times:
            return 0.0
        window = self._cfg().window.total_seconds()
        while times and times[0] <= now - window:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0.0
        if len(times) < limit:
            return 0.0
        # Free again when the failure that fills the limit leaves the window.
        return times[-limit] + window - now
