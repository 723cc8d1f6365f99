"""An endpoint's load score for power of two choices: peak-EWMA latency x (in-flight + 1)
/ EWMA success rate, as Finagle's and linkerd's peak EWMA and Kratos' selector/p2c."""

from __future__ import annotations

import math

from micro.config.model import BalancingConfig


class PeakEwma:
    """Latency and success-rate averages of one endpoint, weighted by time.

    Each answer weighs by the time since the previous one (weight 1 - e^(-dt/decay)),
    so the averages mean the same whatever the call rate. A latency above the average
    replaces it at once (the peak): a slowing endpoint loses traffic on its first slow
    answer, and earns it back as faster answers decay the peak away. Before its first
    answer an endpoint has no latency: the pool scores it with its peers' average, so
    that it is neither flooded (as with 0) nor starved.
    """

    __slots__ = ("_stamp", "latency_s", "success")

    def __init__(self, now: float) -> None:
        self.latency_s: float | None = None
        self.success = 1.0
        self._stamp = now

    def observe(self, latency_s: float, failed: bool, now: float, cfg: BalancingConfig) -> None:
        elapsed = max(now - self._stamp, 0.0)
        self._stamp = now
        if self.latency_s is None or latency_s > self.latency_s:
            self.latency_s = latency_s
        elif not failed:
            # A fast failure (refused at once) must not make an endpoint look fast.
            keep = math.exp(-elapsed / cfg.latency_decay.total_seconds())
            self.latency_s = self.latency_s * keep + latency_s * (1.0 - keep)
        keep = math.exp(-elapsed / cfg.success_decay.total_seconds())
        self.success = self.success * keep + (0.0 if failed else 1.0) * (1.0 - keep)

    def score(self, in_flight: int, cfg: BalancingConfig, latency_s: float) -> float:
        """Lower is better: the expected wait behind this endpoint's calls in flight,
        inflated by its failures; `latency_s` stands in until its first answer."""
        latency = latency_s if self.latency_s is None else self.latency_s
        return latency * (in_flight + 1) / max(self.success, cfg.min_success_rate)
