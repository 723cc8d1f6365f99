"""Outlier ejection of one endpoint, as Envoy's outlier detection: failures in a row or
a failure rate over a recent window eject it for base_time x its ejections in a row
(capped); back in, one failure ejects it again, a run of successes clears its record."""

from __future__ import annotations

import collections

from micro.config.model import EjectionConfig

# The window slides by a tenth of itself: old outcomes leave it in steps, not all at once.
_BUCKETS = 10


class _Window:
    """Counts of calls and failures over the recent `window`, in time buckets."""

    __slots__ = ("_buckets", "failures", "total")

    def __init__(self) -> None:
        self._buckets: collections.deque[list[float]] = collections.deque()  # [start, n, bad]
        self.total = 0
        self.failures = 0

    def add(self, failed: bool, now: float, window_s: float) -> None:
        self._expire(now, window_s)
        if not self._buckets or now >= self._buckets[-1][0] + window_s / _BUCKETS:
            self._buckets.append([now, 0, 0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        self.total += 1
        if failed:
            bucket[2] += 1
            self.failures += 1

    def _expire(self, now: float, window_s: float) -> None:
        while self._buckets and self._buckets[0][0] <= now - window_s:
            _, total, failures = self._buckets.popleft()
            self.total -= int(total)
            self.failures -= int(failures)


class Outlier:
    """One endpoint's record: recent outcomes, ejections in a row, and whether it is out."""

    __slots__ = ("_consecutive", "_successes", "_window", "ejected_until", "ejections", "probing")

    def __init__(self) -> None:
        self._window = _Window()
        self._consecutive = 0
        self._successes = 0
        self.ejections = 0  # in a row: cleared by a run of successes
        self.ejected_until: float | None = None
        self.probing = False  # back from an ejection, not yet cleared

    @property
    def ejected(self) -> bool:
        return self.ejected_until is not None

    def in_good_standing(self, failing_after: int) -> bool:
        """Not ejected, and fewer than `failing_after` failures in a row: worth a retry."""
        return self.ejected_until is None and self._consecutive < failing_after

    def record(self, failed: bool, now: float, cfg: EjectionConfig) -> str | None:
        """An answer from this endpoint: why to eject it when it crosses a bound, else
        None (the pool decides whether the share of ejected endpoints allows it)."""
        if self.ejected:
            return None  # answers to calls sent before it was ejected
        window = self._window
        window.add(failed, now, cfg.window.total_seconds())
        if not failed:
            self._consecutive = 0
            self._successes += 1
            if self._successes >= cfg.success_run:
                self.ejections, self.probing = 0, False
            return None
        self._consecutive += 1
        self._successes = 0
        if self.probing:
            return "failed again after its return"
        if self._consecutive >= cfg.consecutive_failures:
            return f"{self._consecutive} failures in a row"
        if window.total >= cfg.min_requests and window.failures >= cfg.failure_rate * window.total:
            return f"{window.failures} of its last {window.total} calls failed"
        return None

    def eject(self, now: float, cfg: EjectionConfig) -> float:
        """Out from now; the seconds it stays out."""
        self.ejections += 1
        seconds = min(cfg.base_time.total_seconds() * self.ejections, cfg.max_time.total_seconds())
        self.ejected_until = now + seconds
        # Judged afresh when back: what it did before the ejection is paid for.
        self._window = _Window()
        self._consecutive = self._successes = 0
        return seconds

    def due_back(self, now: float) -> bool:
        return self.ejected_until is not None and now >= self.ejected_until

    def bring_back(self) -> None:
        self.ejected_until = None
        self.probing = True


def ejectable(size: int, ejected: int, cfg: EjectionConfig) -> bool:
    """Whether one more of `size` endpoints may be ejected while `ejected` are out: at
    most max_ejected_percent of them (but one may always be), and one always stays in."""
    allowed = min(size - 1, max(1, size * cfg.max_ejected_percent // 100))
    return cfg.enabled and ejected < allowed
