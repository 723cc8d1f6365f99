"""Client-side adaptive throttling per (dependency, method): the Google SRE book's
"Handling Overload" breaker, as Kratos's sre breaker does it.

Rather than a fixed open/closed switch, a call is refused locally with probability
max(0, (requests - k x accepts) / (requests + 1)) over a sliding window: a dependency
that fails most calls gets fewer of them (and its callers fail fast), while some calls
still go through and tell when it is back.

Unlike the book and Kratos, `requests` are the calls sent, not the refused ones too:
counting refusals feeds the refused share back into itself, so that after an outage it
fell by only about half a window's worth at a time and took several windows to clear;
counting sent calls only, the first answers after recovery clear it within a window.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable

from micro.config.model import BreakerConfig
from micro.metrics import CLIENT_BREAKER_REJECTIONS, CLIENT_BREAKER_SHED_PROBABILITY

log = logging.getLogger("micro.client")

Clock = Callable[[], float]
BUCKETS = 10  # per window: the counts slide in tenths of it


class _Window:
    """Requests and accepts over the last `window_s`, in buckets."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._width = window_s / BUCKETS
        self._buckets: deque[list[int]] = deque()  # [bucket index, requests, accepts]
        self.requests = 0
        self.accepts = 0

    def _expire(self, now: float) -> int:
        index = int(now // self._width)
        while self._buckets and self._buckets[0][0] <= index - BUCKETS:
            _, requests, accepts = self._buckets.popleft()
            self.requests -= requests
            self.accepts -= accepts
        return index

    def add(self, now: float, *, requests: int = 0, accepts: int = 0) -> None:
        index = self._expire(now)
        if not self._buckets or self._buckets[-1][0] != index:
            self._buckets.append([index, 0, 0])
        self._buckets[-1][1] += requests
        self._buckets[-1][2] += accepts
        self.requests += requests
        self.accepts += accepts

    def totals(self, now: float) -> tuple[int, int]:
        self._expire(now)
        return self.requests, self.accepts


class AdaptiveThrottle:
    """The breaker of one (dependency, method). `allow()` when a call starts,
    `record(accepted)` when it ends, whatever its retries. A request counts when it
    ends: counted when sent, a burst of calls still in flight would look like requests
    nobody accepted."""

    def __init__(
        self,
        service_name: str,
        method_name: str,
        config: Callable[[], BreakerConfig],
        *,
        clock: Clock = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.service_name = service_name
        self.method_name = method_name
        self._config = config
        self._clock = clock
        self._rand = rand
        self._window: _Window | None = None
        self.rejecting = False  # shed a call within the last window
        self._shed_at = float("-inf")
        self._probability = CLIENT_BREAKER_SHED_PROBABILITY.labels(service_name, method_name)
        self._rejections = CLIENT_BREAKER_REJECTIONS.labels(service_name, method_name)

    def _counts(self, cfg: BreakerConfig) -> _Window:
        window_s = cfg.window.total_seconds()
        if self._window is None or self._window.window_s != window_s:
            self._window = _Window(window_s)  # a new window length starts afresh
        return self._window

    def probability(self) -> float:
        """The share of calls refused now."""
        cfg = self._config()
        requests, accepts = self._counts(cfg).totals(self._clock())
        if not cfg.enabled or requests < cfg.min_requests:
            return 0.0
        return max(0.0, (requests - cfg.k * accepts) / (requests + 1))

    def allow(self) -> bool:
        """Whether to send this call (a refusal is not counted as a request)."""
        cfg = self._config()
        if not cfg.enabled:
            self._note(0.0, settled=True)
            return True
        probability = self.probability()
        self._note(probability, settled=self._clock() - self._shed_at >= cfg.window.total_seconds())
        if probability > 0 and self._rand() < probability:
            self._rejections.inc()
            return False
        return True

    def record(self, *, accepted: bool) -> None:
        """The call allowed last ended; accepted unless it failed by
        micro.client.outcome.counts_as_failure."""
        cfg = self._config()
        if cfg.enabled:
            self._counts(cfg).add(self._clock(), requests=1, accepts=int(accepted))

    def _note(self, probability: float, *, settled: bool) -> None:
        """Export the share; log when shedding starts, and when it stops once no call
        was shed for a whole window (`settled`), so that a share hovering near zero
        does not log a line per call."""
        self._probability.set(probability)
        if probability > 0:
            self._shed_at = self._clock()
            if not self.rejecting:
                self.rejecting = True
                log.warning(
                    "client %s %s: breaker starts shedding calls (%.0f%% now): most recent"
                    " calls failed",
                    self.service_name,
                    self.method_name,
                    probability * 100,
                )
        elif self.rejecting and settled:
            self.rejecting = False
            log.info(
                "client %s %s: breaker stops shedding calls", self.service_name, self.method_name
            )
