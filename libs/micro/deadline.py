"""The deadline of the request being served, for the calls made while serving it.

The gRPC server layer and the HTTP timeout middleware set it when a request starts (the
caller's deadline or the server's own timeout, whichever is sooner); the client then
gives an outgoing call no more than what is left of it, so that work is never done for
a caller that has already given up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Clock = Callable[[], float]

# Absolute, on time.monotonic's scale; None while serving nothing (a background task).
_DEADLINE: ContextVar[float | None] = ContextVar("micro_request_deadline", default=None)


@contextmanager
def serving_for(seconds: float, clock: Clock = time.monotonic) -> Iterator[None]:
    """Within the block, the request being served must end `seconds` from now; a sooner
    deadline already set (a nested request) stays."""
    deadline = clock() + seconds
    outer = _DEADLINE.get()
    token = _DEADLINE.set(deadline if outer is None else min(outer, deadline))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining_s(clock: Clock = time.monotonic) -> float | None:
    """Seconds left of the request being served (negative once passed); None when the
    code runs outside any request."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - clock()


def outgoing_timeout_s(own_s: float, margin_s: float, clock: Clock = time.monotonic) -> float:
    """The timeout of a call made now: its own, or what is left of the request being
    served minus `margin_s` when that is shorter; <= 0 when no time is left for it."""
    left = remaining_s(clock)
    return own_s if left is None else min(own_s, left - margin_s)
