"""grpc.aio client interceptors: a client span with W3C context in the metadata, and
client metrics. Channels to other services use `client_interceptors(service_name)`.
"""

from __future__ import annotations

import time
from typing import Any

import grpc
from opentelemetry.trace import SpanKind, Status, StatusCode

from micro import metrics, tracing


def _method_name(details: grpc.aio.ClientCallDetails) -> str:
    method: str | bytes = details.method
    return method.decode() if isinstance(method, bytes) else method


def _with_trace_context(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    carrier: dict[str, str] = {}
    tracing.inject_metadata(carrier)
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
    def __init__(self, service: str) -> None:
        self._service = service

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
            call = await continuation(_with_trace_context(client_call_details), request)
            code: grpc.StatusCode = await call.code()
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code is not grpc.StatusCode.OK:
                span.set_status(Status(StatusCode.ERROR, code.name))
        metrics.observe_client(self._service, method, code.name, time.perf_counter() - started)
        return call


class UnaryStreamClientInterceptor(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    """Streams carry the trace context too (their duration is the caller's business)."""

    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(_with_trace_context(client_call_details), request)


def client_interceptors(service: str) -> list[Any]:
    # list[Any]: grpc-stubs types the channel's interceptors parameter as a placeholder.
    """Pass to grpc.aio.insecure_channel(..., interceptors=...) for calls to `service`."""
    return [UnaryClientInterceptor(service), UnaryStreamClientInterceptor()]
