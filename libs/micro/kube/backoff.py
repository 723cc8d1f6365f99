"""Jittered exponential backoff for reconnect loops."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    """Delays base, 2*base, 4*base ... capped at cap, each scaled by a random factor in
    [0.5, 1.0] so that many clients do not reconnect to a restarted API in lock step."""

    base: float = 0.05
    cap: float = 5.0
    attempt: int = 0

    def next_delay(self) -> float:
        delay = float(min(self.cap, self.base * (2**self.attempt)))
        self.attempt = min(self.attempt + 1, 30)
        return float(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not security

    def reset(self) -> None:
        self.attempt = 0
