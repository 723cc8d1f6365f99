"""The adaptive concurrency limit of a server (server.shedding): Netflix
concurrency-limits' Gradient2, fed one latency sample per window of calls (its
WindowedLimit).

Gradient2 compares a short-term latency (the mean of the last window's calls) with a
long-term exponential average over many windows: while they agree the limit grows by a
small queue allowance, when the short one rises past `tolerance` times the long one
the limit shrinks by their ratio (at most by half per sample), smoothed. It needs no
no-load baseline (Vegas's minimum latency drifts with the data a service holds) and no
CPU reading (BBR-style shedders read the host's CPU, which a pod sharing cores cannot
tell apart from its own load).
Calls past the limit are shed at once, so the server never queues more than it can
finish within its normal latency. Sampled per call instead, the long average caught up
with a sustained overload within seconds and the limit grew back under it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from micro.config.model import SheddingConfig

_log = logging.getLogger("micro.shedding")

LIMIT = Gauge(
    "micro_server_concurrency_limit",
    "The adaptive concurrency limit of a server (server.shedding), by transport.",
    ["transport"],
)
IN_FLIGHT = Gauge(
    "micro_server_in_flight", "Calls a server is handling now, by transport.", ["transport"]
)
SHED = Counter(
    "micro_server_shed",
    "Calls refused at once because the concurrency limit was reached, by transport.",
    ["transport"],
)

# The long-term average: the mean of the first samples (windows), then an EWMA over
# about this many, so one slow burst barely moves the reference it is judged against.
_LONG_WINDOW = 600
_WARMUP = 10
# When the long average is this many times the short one, load has gone and the long
# average still remembers it: it decays faster so the limit can grow again.
_STALE_RATIO = 2.0
_STALE_DECAY = 0.95


class _LongRtt:
    """Mean of the first `_WARMUP` samples, then an EWMA over `_LONG_WINDOW`."""

    __slots__ = ("count", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.count = 0

    def add(self, sample: float) -> float:
        if self.count < _WARMUP:
            self.count += 1
            self.value += (sample - self.value) / self.count
        else:
            factor = 2.0 / (_LONG_WINDOW + 1)
            self.value = self.value * (1 - factor) + sample * factor
        return self.value


class Gradient2:
    """The limit itself: `sample(rtt, in_flight)` after each call answers the new limit."""

    def __init__(self, settings: SheddingConfig) -> None:
        self.settings = settings
        self.limit = float(_clamp(settings.initial_limit, settings))
        self.long_rtt = _LongRtt()

    def update(self, settings: SheddingConfig) -> None:
        self.settings = settings
        self.limit = float(_clamp(self.limit, settings))

    def sample(self, rtt: float, in_flight: int) -> float:
        s = self.settings
        short = max(rtt, 1e-6)
        long = self.long_rtt.add(short)
        if long / short > _STALE_RATIO:
            self.long_rtt.value *= _STALE_DECAY
        # A server far below its limit tells nothing about what it could take.
        if in_flight < self.limit / 2:
            return self.limit
        gradient = max(0.5, min(1.0, s.tolerance * long / short))
        target = self.limit * gradient + s.queue_size
        smoothed = self.limit * (1 - s.smoothing) + target * s.smoothing
        self.limit = float(_clamp(smoothed, s))
        return self.limit


def _clamp(value: float, settings: SheddingConfig) -> float:
    return max(settings.min_limit, min(settings.max_limit, value))


# A shedding spell ends after this long without a shed call: a limit hovering at the
# edge logs once per spell, not once per flip.
SPELL_QUIET_S = 1.0


@dataclass(slots=True)
class _Window:
    """The calls finished since `started`: one latency sample once the window is over."""

    started: float
    calls: int = 0
    total_s: float = 0.0
    max_in_flight: int = 0


@dataclass(slots=True)
class Ticket:
    """An admitted call: when it started and how many were in flight with it."""

    started: float
    in_flight: int


class ConcurrencyLimiter:
    """Admits calls up to the adaptive limit: `admit()` answers a Ticket, or None for a
    call to shed; `done(ticket)` when the admitted call ends. `clock` is injectable so
    the tests drive latency by hand. One log line when shedding starts and one when it
    stops, never one per call."""

    def __init__(
        self,
        settings: SheddingConfig,
        *,
        transport: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._algorithm = Gradient2(settings)
        self._clock = clock
        self._transport = transport
        self.in_flight = 0
        self.shed = 0  # calls shed since the current shedding spell began
        self._last_shed = 0.0
        self._limit_gauge = LIMIT.labels(transport)
        self._in_flight_gauge = IN_FLIGHT.labels(transport)
        self._shed_counter = SHED.labels(transport)
        self._limit_gauge.set(self._algorithm.limit)
        self._window = _Window(clock())

    @property
    def limit(self) -> int:
        return math.floor(self._algorithm.limit)

    @property
    def enabled(self) -> bool:
        return self._algorithm.settings.enabled

    def update(self, settings: SheddingConfig) -> None:
        """New settings (a live config change); the limit is clamped into the new bounds."""
        was = self.enabled
        self._algorithm.update(settings)
        self._limit_gauge.set(self._algorithm.limit)
        if was != settings.enabled:
            _log.info("%s load shedding %s", self._transport, "on" if settings.enabled else "off")

    def admit(self) -> Ticket | None:
        if self.enabled and self.in_flight >= self.limit:
            if self.shed == 0:
                _log.warning(
                    "%s shedding load: %d calls in flight reached the limit",
                    self._transport,
                    self.in_flight,
                )
            self.shed += 1
            self._last_shed = self._clock()
            self._shed_counter.inc()
            return None
        if self.shed and self._clock() - self._last_shed >= SPELL_QUIET_S:
            _log.info("%s no longer shedding: %d calls were shed", self._transport, self.shed)
            self.shed = 0
        self.in_flight += 1
        self._in_flight_gauge.set(self.in_flight)
        return Ticket(self._clock(), self.in_flight)

    def done(self, ticket: Ticket, *, sample: bool = True) -> None:
        """The call ended; `sample=False` for a call whose length is not the server's
        work (a long poll, a stream): it held a slot but tells nothing of latency."""
        self.in_flight -= 1
        self._in_flight_gauge.set(self.in_flight)
        if not sample:
            return
        now = self._clock()
        window = self._window
        window.calls += 1
        window.total_s += now - ticket.started
        window.max_in_flight = max(window.max_in_flight, ticket.in_flight)
        settings = self._algorithm.settings
        if window.calls >= settings.window_calls and (
            now - window.started >= settings.window.total_seconds()
        ):
            mean_s = window.total_s / window.calls
            self._limit_gauge.set(self._algorithm.sample(mean_s, window.max_in_flight))
            self._window = _Window(now)

    def retry_after_s(self) -> float:
        """How long until a slot is likely free: the long-term latency of a call."""
        return max(self._algorithm.long_rtt.value, 0.001)
