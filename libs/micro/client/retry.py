"""When a failed attempt may be tried again, and after how long.

UNAVAILABLE is retried after a jittered exponential backoff; RESOURCE_EXHAUSTED only when
the server said so with gRPC's pushback trailer (A6), after the time it asked for, and
never for a rate or size limit: those are about the request (a login limiter's lock),
not a busy server. A negative or unreadable pushback means "do not retry", whatever the
code.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import grpc

from micro.config.model import RetryBudgetConfig
from micro.errors import PUSHBACK_KEY, Exhausted, ServiceError

# What pushback_s answers when the server asked not to be retried.
REFUSED = -1.0
# RESOURCE_EXHAUSTED causes that a retry of the same request would meet again.
_NOT_LOAD = frozenset({Exhausted.RATE, Exhausted.SIZE})


def pushback_s(error: grpc.aio.AioRpcError) -> float | None:
    """The server's pushback in seconds; None when absent, REFUSED when negative or
    not an integer (A6: the client then does not retry)."""
    trailers: Sequence[tuple[str, str | bytes]] = tuple(error.trailing_metadata() or ())  # type: ignore[arg-type]
    for key, value in trailers:
        if key != PUSHBACK_KEY:
            continue
        text = value.decode() if isinstance(value, bytes) else str(value)
        try:
            milliseconds = int(text.strip())
        except ValueError:
            return REFUSED
        return REFUSED if milliseconds < 0 else milliseconds / 1000
    return None


def backoff_s(
    retry: int, cfg: RetryBudgetConfig, rand: Callable[[], float] = random.random
) -> float:
    """The wait before retry number `retry` (1 for the first): full jitter, a random time
    up to backoff x 2^(retry-1), capped at max_backoff."""
    ceiling = cfg.backoff.total_seconds() * 2.0 ** max(retry - 1, 0)
    return rand() * min(ceiling, cfg.max_backoff.total_seconds())


def retry_delay_s(
    error: grpc.aio.AioRpcError,
    retry: int,
    cfg: RetryBudgetConfig,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """The wait before trying a retryable method again after `error`; None: do not."""
    code = error.code()
    if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
        return None
    pushback = pushback_s(error)
    if pushback == REFUSED:
        return None
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED and (
        pushback is None or ServiceError.from_rpc_error(error).cause in _NOT_LOAD
    ):
        return None
    if pushback is not None:
        return pushback
    return backoff_s(retry, cfg, rand)
