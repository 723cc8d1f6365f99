"""Load shedding at the edge of each server: the gRPC layer and the HTTP middleware that
admit a call through the server's ConcurrencyLimiter (micro.transport.limit) or refuse
it at once.

Both sit outermost, before tracing, logging, identity and auth: a shed call costs one
comparison and one answer, and is counted (micro_server_shed) rather than logged.
Health checks, reflection and the probe paths are never shed nor counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from micro.errors import ServiceError, overloaded
from micro.transport.grpc_interceptors import QUIET_PREFIXES, GrpcCall, Layer, _CallLayer
from micro.transport.http_middleware import QUIET_PATHS, ASGIApp, Receive, Scope, Send, send_error
from micro.transport.limit import ConcurrencyLimiter, Ticket


def refusal(limiter: ConcurrencyLimiter) -> ServiceError:
    """RESOURCE_EXHAUSTED (HTTP 503) with the time a slot should take to free up."""
    return overloaded(
        f"server overloaded: {limiter.in_flight} calls in flight reached the limit "
        f"{limiter.limit}; retry later or elsewhere",
        retry_after=timedelta(seconds=limiter.retry_after_s()),
    )


class _Shed(_CallLayer):
    __slots__ = ("_limiter", "_ticket", "_unsampled")

    def __init__(
        self, call: GrpcCall, limiter: ConcurrencyLimiter, unsampled: frozenset[str]
    ) -> None:
        super().__init__(call)
        self._limiter = limiter
        self._unsampled = unsampled
        self._ticket: Ticket | None = None

    async def __aenter__(self) -> None:
        call = self.call
        if call.method.startswith(QUIET_PREFIXES):
            return
        self._ticket = self._limiter.admit()
        if self._ticket is None:
            error = refusal(self._limiter)
            # Outside the recovery layer: the layer answers the status itself.
            await call.context.abort(error.code, error.message, error.trailing_metadata())

    async def __aexit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, tb: Any
    ) -> bool:
        if self._ticket is not None:
            call = self.call
            sample = not call.response_streaming and call.method not in self._unsampled
            self._limiter.done(self._ticket, sample=sample)
        return False


def shedding_layer(limiter: ConcurrencyLimiter, unsampled: Iterable[str] = ()) -> Layer:
    """The outermost gRPC layer: admit through `limiter` or answer RESOURCE_EXHAUSTED.
    `unsampled` (full method names: long polls, feeds) and streaming calls hold a slot
    but their length, the poll's or the stream's, is no latency sample."""
    methods = frozenset(unsampled)
    return lambda call: _Shed(call, limiter, methods)


class SheddingMiddleware:
    """The outermost HTTP middleware: admit through the limiter or answer 503 with
    Retry-After."""

    def __init__(self, app: ASGIApp, *, limiter: ConcurrencyLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in QUIET_PATHS:
            await self.app(scope, receive, send)
            return
        ticket = self.limiter.admit()
        if ticket is None:
            await send_error(send, refusal(self.limiter))
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.limiter.done(ticket)
