"""Hedged calls: a second attempt on another instance when the first is slow to answer.

Only for methods marked NO_SIDE_EFFECTS: both attempts may run to completion on the
servers (the loser's cancellation can arrive after its work is done), which must never
apply anything twice. The delay is a high percentile of the method's recent latency, so
only the slowest few calls are hedged; each hedge spends a retry-budget token, so a
dependency that is slow everywhere gets bounded extra load, not twice its traffic.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from micro.config.model import HedgingConfig
from micro.metrics import CLIENT_HEDGES_SENT, CLIENT_HEDGES_WON

T = TypeVar("T")

# Recent answers kept per (dependency, method): bounded memory, and old enough samples
# fall out so the delay follows a change of the dependency's speed.
WINDOW = 128
# Fewer answers than this give no usable high percentile: the configured fallback applies.
MIN_SAMPLES = 20

Clock = Callable[[], float]
# A future that completes after the given seconds (cancelling it stops the timer).
Timer = Callable[[float], asyncio.Future[None]]


def loop_timer(seconds: float) -> asyncio.Future[None]:
    """The event loop's timer: a callback, not a task per call."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    handle = loop.call_later(seconds, _complete, done)
    done.add_done_callback(lambda _: handle.cancel())
    return done


def _complete(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class LatencyTracker:
    """Latencies of the recent answered attempts of one (dependency, method).

    An attempt's own time from send to answer, whether it won or not; cancelled losers
    give none. So a slow instance's calls, cut short by their hedges, do not pull the
    delay up towards that instance's latency: the delay stays the healthy tail.
    """

    def __init__(self, window: int = WINDOW, min_samples: int = MIN_SAMPLES) -> None:
        self._samples: deque[float] = deque(maxlen=window)
        self._min_samples = min_samples

    def record(self, seconds: float) -> None:
        self._samples.append(seconds)

    def __len__(self) -> int:
        return len(self._samples)

    def percentile(self, percent: float) -> float | None:
        """The nearest-rank percentile of the window; None before min_samples answers."""
        if len(self._samples) < self._min_samples:
            return None
        ordered = sorted(self._samples)
        rank = max(math.ceil(percent / 100 * len(ordered)), 1)
        return ordered[rank - 1]

    def delay_s(self, cfg: HedgingConfig) -> float:
        """How long the first attempt may take before a hedge is sent: the configured
        percentile, not below min_delay; fallback_delay until enough answers are known."""
        observed = self.percentile(cfg.percentile)
        if observed is None:
            return cfg.fallback_delay.total_seconds()
        return max(observed, cfg.min_delay.total_seconds())


# Starts a hedge on an instance not tried yet, having taken a retry-budget token; None
# when either is missing. Its accounting (in-flight count) happens inside the coroutine,
# so a hedge cancelled before it ran leaves none behind.
StartHedge = Callable[[], Awaitable[T] | None]


class Hedger:
    """Hedging for the calls to one dependency: a latency tracker per method and the
    hedges-sent / hedges-won counters. `clock` and `timer` are injectable for tests."""

    def __init__(
        self,
        service_name: str,
        *,
        clock: Clock | None = None,
        timer: Timer = loop_timer,
    ) -> None:
        self.service_name = service_name
        self._trackers: dict[str, LatencyTracker] = {}
        self._clock = clock
        self._timer_after = timer
        self._sent = CLIENT_HEDGES_SENT.labels(service_name)
        self._won = CLIENT_HEDGES_WON.labels(service_name)

    def tracker(self, method: str) -> LatencyTracker:
        tracker = self._trackers.get(method)
        if tracker is None:
            tracker = self._trackers[method] = LatencyTracker()
        return tracker

    async def call(
        self,
        method: str,
        first: Awaitable[T],
        start_hedge: StartHedge[T],
        *,
        cfg: HedgingConfig,
        retryable: Callable[[BaseException], bool],
    ) -> T:
        """The first answer that is not a retryable failure, of the `first` attempt and
        of at most cfg.max_hedges hedges, each started `delay` after the previous one
        (while start_hedge() gives one). The other attempts are cancelled and awaited,
        so their instances' in-flight counts are released before this returns. When
        every attempt failed retryably, the last failure is raised for the caller's
        retry loop."""
        tracker = self.tracker(method)
        clock = self._clock or asyncio.get_running_loop().time
        # Each attempt's start time, and whether it is a hedge.
        attempts: dict[asyncio.Future[T], tuple[float, bool]] = {
            asyncio.ensure_future(first): (clock(), False)
        }
        pending = set(attempts)
        timer = self._timer(tracker, cfg, hedges=0)
        last_error: BaseException | None = None
        try:
            while pending:
                waiting: set[asyncio.Future[Any]] = {*pending, *([timer] if timer else [])}
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                # Answers before failures: an answer landing with a failure still wins.
                answered = sorted(pending & done, key=_failed)
                for attempt in answered:
                    pending.discard(attempt)
                    began, hedged = attempts[attempt]
                    error = attempt.exception()  # cancelled by someone else: raises
                    if error is not None and retryable(error):
                        last_error = error
                        continue
                    tracker.record(clock() - began)
                    if hedged:
                        self._won.inc()
                    return attempt.result()
                if timer is not None and timer in done:
                    timer = None
                    hedge = start_hedge() if pending else None
                    if hedge is not None:
                        self._sent.inc()
                        task = asyncio.ensure_future(hedge)
                        attempts[task] = (clock(), True)
                        pending.add(task)
                        timer = self._timer(tracker, cfg, hedges=len(attempts) - 1)
            assert last_error is not None
            raise last_error
        finally:
            leftovers: list[asyncio.Future[Any]] = [*pending, *([timer] if timer else [])]
            for future in leftovers:
                future.cancel()
            if leftovers:
                await asyncio.gather(*leftovers, return_exceptions=True)

    def _timer(
        self, tracker: LatencyTracker, cfg: HedgingConfig, *, hedges: int
    ) -> asyncio.Future[None] | None:
        if hedges >= cfg.max_hedges:
            return None
        return self._timer_after(tracker.delay_s(cfg))


def _failed(attempt: asyncio.Future[Any]) -> bool:
    return attempt.cancelled() or attempt.exception() is not None
