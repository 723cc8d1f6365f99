"""grpc.aio client interceptors: a client span with W3C context in the metadata, client
metrics, and the caller's identity token. Channels to other services use
`client_interceptors(service_name, tokens)`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry.trace import SpanKind, Status, StatusCode

from micro import metrics, tracing
from micro.identity.caller import CallerTokens
from micro.identity.principal import IDENTITY_METADATA_KEY

# The identity token to send now, or None to send none.
TokenSource = Callable[[], str | None]


def _method_name(details: grpc.aio.ClientCallDetails) -> str:
    method: str | bytes = details.method
    return method.decode() if isinstance(method, bytes) else method


def _outgoing(
    details: grpc.aio.ClientCallDetails, token: TokenSource | None
) -> grpc.aio.ClientCallDetails:
    """The call's metadata plus the trace context and, when there is one, the identity
    token (each replacing a value the caller set under the same key)."""
    carrier: dict[str, str] = {}
    tracing.inject_metadata(carrier)
    if token is not None and (identity := token()) is not None:
        carrier[IDENTITY_METADATA_KEY] = identity
    metadata = grpc.aio.Metadata()
    for key, value in details.metadata or ():
        if key not in carrier:
            metadata.add(key, value)
    for key, value in carrier.items():
        metadata.add(key, value)
    return grpc.aio.ClientCallDetails(
        details.method,
        details.timeout,
        metadata,
        details.credentials,
        details.wait_for_ready,
    )


class UnaryClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    def __init__(self, service: str, token: TokenSource | None = None) -> None:
        self._service = service
        self._token = token

    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        method = _method_name(client_call_details)
        started = time.perf_counter()
        with tracing.tracer().start_as_current_span(
            method.lstrip("/"),
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.method": method, "peer.service": self._service},
        ) as span:
            call = await continuation(_outgoing(client_call_details, self._token), request)
            try:
                code: grpc.StatusCode = await call.code()
            except asyncio.CancelledError:
                # grpc cancels this task, not the call it holds: end the call here, so
                # that the server stops working on it (a hedge's loser).
                call.cancel()
                raise
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code is not grpc.StatusCode.OK:
                span.set_status(Status(StatusCode.ERROR, code.name))
        metrics.observe_client(self._service, method, code.name, time.perf_counter() - started)
        return call


class _StreamingInterceptor:
    """Streams carry the trace context and identity too (their duration is the caller's
    business, so no metrics)."""

    def __init__(self, token: TokenSource | None = None) -> None:
        self._token = token


class UnaryStreamClientInterceptor(_StreamingInterceptor, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(_outgoing(client_call_details, self._token), request)


class StreamUnaryClientInterceptor(_StreamingInterceptor, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_unary(
        self,
        continuation: Any,
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        return await continuation(_outgoing(client_call_details, self._token), request_iterator)


class StreamStreamClientInterceptor(_StreamingInterceptor, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_stream(
        self,
        continuation: Any,
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        return await continuation(_outgoing(client_call_details, self._token), request_iterator)


def client_interceptors(service: str, tokens: CallerTokens | None = None) -> list[Any]:
    # list[Any]: grpc-stubs types the channel's interceptors parameter as a placeholder.
    """Pass to grpc.aio.insecure_channel(..., interceptors=...) for calls to `service`;
    with `tokens`, every call carries the token for `service` in x-micro-identity."""
    token = None if tokens is None else tokens.token_file(service).current
    return [
        UnaryClientInterceptor(service, token),
        UnaryStreamClientInterceptor(token),
        StreamUnaryClientInterceptor(token),
        StreamStreamClientInterceptor(token),
    ]
