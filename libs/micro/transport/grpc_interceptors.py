"""The gRPC server's interceptor chain: tracing, access log + metrics, recovery,
deadline and authentication, outermost first.

Each layer is an async context manager around the handler, so one chain serves unary and
streaming methods alike. Recovery turns any exception into a status: a ServiceError or a
downstream grpc.RpcError keeps its code; anything else is logged with its traceback and
the caller sees only INTERNAL "internal error".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from micro import metrics, tracing
from micro.auth import AccessPolicy, acting_as
from micro.errors import INTERNAL_MESSAGE, ServiceError

_log = logging.getLogger("micro.grpc")

# Probes and reflection are called all the time; they log at DEBUG only.
QUIET_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


@dataclass(slots=True)
class GrpcCall:
    method: str
    context: grpc.aio.ServicerContext[Any, Any]
    response_streaming: bool
    started: float = field(default_factory=time.perf_counter)
    code: grpc.StatusCode = grpc.StatusCode.OK
    _text_metadata: dict[str, str] | None = None

    @property
    def text_metadata(self) -> dict[str, str]:
        """The caller's text (non -bin) metadata, read once for every layer; the first
        value of a repeated key wins."""
        if self._text_metadata is None:
            self._text_metadata = {}
            for key, value in self.context.invocation_metadata() or ():
                if isinstance(value, str):
                    self._text_metadata.setdefault(key, value)
        return self._text_metadata

    def metadata(self, key: str) -> str | None:
        return self.text_metadata.get(key)


Layer = Callable[[GrpcCall], AbstractAsyncContextManager[None]]


@asynccontextmanager
async def tracing_layer(call: GrpcCall) -> AsyncIterator[None]:
    parent = tracing.extract(call.text_metadata)
    with tracing.tracer().start_as_current_span(
        call.method.lstrip("/"),
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.method": call.method},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield
        finally:
            span.set_attribute("rpc.grpc.status_code", call.code.value[0])
            if call.code is not grpc.StatusCode.OK:
                span.set_status(Status(StatusCode.ERROR, call.code.name))


@asynccontextmanager
async def observe_layer(call: GrpcCall) -> AsyncIterator[None]:
    """Access log line and metrics, once the final code is known."""
    try:
        yield
    finally:
        seconds = time.perf_counter() - call.started
        metrics.observe_server("grpc", call.method, call.code.name, seconds)
        quiet = call.method.startswith(QUIET_PREFIXES)
        level = logging.DEBUG if quiet else logging.INFO
        if call.code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
            level = logging.ERROR
        # Probes log at DEBUG: the fields of a line nobody writes are not built.
        if _log.isEnabledFor(level):
            _log.log(
                level,
                "[gRPC] %s %s",
                call.method,
                call.code.name,
                extra={
                    "fields": {
                        "method": call.method,
                        "code": call.code.name,
                        "duration_ms": round(seconds * 1000, 3),
                        "peer": call.context.peer(),
                    }
                },
            )


_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def _context_code(call: GrpcCall) -> grpc.StatusCode:
    # grpc.aio answers a bare int (or None) here in some versions, whatever the stubs say.
    code: object = call.context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    return _CODE_BY_NUMBER.get(code, grpc.StatusCode.OK)


@asynccontextmanager
async def recovery_layer(call: GrpcCall) -> AsyncIterator[None]:
    try:
        yield
    except asyncio.CancelledError:
        call.code = grpc.StatusCode.CANCELLED
        raise
    except grpc.aio.AbortError:
        # The handler aborted with a status of its own choosing.
        call.code = _context_code(call)
        raise
    except ServiceError as error:
        call.code = error.code
        await call.context.abort(error.code, error.message, error.trailing_metadata())
    except grpc.RpcError as error:
        mapped = ServiceError.from_rpc_error(error)
        call.code = mapped.code
        await call.context.abort(mapped.code, mapped.message, mapped.trailing_metadata())
    except Exception:
        _log.exception("[gRPC] %s failed", call.method)
        call.code = grpc.StatusCode.INTERNAL
        await call.context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
    else:
        call.code = _context_code(call)


def deadline_layer(timeout: timedelta) -> Layer:
    """Cut a unary-response call at the configured timeout or the caller's deadline."""
    limit = timeout.total_seconds()

    @asynccontextmanager
    async def layer(call: GrpcCall) -> AsyncIterator[None]:
        if call.response_streaming or limit <= 0:
            yield
            return
        remaining = call.context.time_remaining()
        budget = min(limit, remaining) if remaining is not None else limit
        try:
            async with asyncio.timeout(budget):
                yield
        except TimeoutError:
            raise ServiceError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"{call.method} did not finish within {budget:.3f}s",
            ) from None

    return layer


def auth_layer(policy: AccessPolicy) -> Layer:
    @asynccontextmanager
    async def layer(call: GrpcCall) -> AsyncIterator[None]:
        principal = await policy.authenticate(call.method, call.metadata("authorization"))
        if principal is None:
            yield
            return
        trace.get_current_span().set_attribute("enduser.id", principal.user_id)
        with acting_as(principal):
            yield

    return layer


def _wrap_unary(
    behavior: Callable[[Any, Any], Awaitable[Any]], layers: Sequence[Layer], method: str
) -> Callable[[Any, Any], Awaitable[Any]]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        call = GrpcCall(method, context, response_streaming=False)
        async with AsyncExitStack() as stack:
            for layer in layers:
                await stack.enter_async_context(layer(call))
            return await behavior(request, context)

    return wrapped


def _wrap_streaming(
    behavior: Callable[[Any, Any], Any], layers: Sequence[Layer], method: str
) -> Callable[[Any, Any], AsyncIterator[Any]]:
    async def wrapped(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        call = GrpcCall(method, context, response_streaming=True)
        async with AsyncExitStack() as stack:
            for layer in layers:
                await stack.enter_async_context(layer(call))
            result = behavior(request, context)
            if hasattr(result, "__aiter__"):
                async for item in result:
                    yield item
            else:  # a handler that writes with context.write() and returns
                await result

    return wrapped


def wrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any], layers: Sequence[Layer], method: str
) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler with the layers around its behavior."""
    deserialize = handler.request_deserializer
    serialize = handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _wrap_unary(handler.unary_unary, layers, method), deserialize, serialize
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _wrap_unary(handler.stream_unary, layers, method), deserialize, serialize
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _wrap_streaming(handler.unary_stream, layers, method), deserialize, serialize
        )
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            _wrap_streaming(handler.stream_stream, layers, method), deserialize, serialize
        )
    return handler


class LayeredInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Applies the layers to every method; wrapped handlers are built once per method."""

    def __init__(self, layers: Sequence[Layer]) -> None:
        self._layers = tuple(layers)
        self._cache: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method
        cached = self._cache.get(method)
        if cached is not None:
            return cached
        handler: grpc.RpcMethodHandler[Any, Any] | None = await continuation(handler_call_details)
        if handler is None:  # unknown method: grpc answers UNIMPLEMENTED itself
            return None  # type: ignore[return-value]
        wrapped = wrap_handler(handler, self._layers, method)
        self._cache[method] = wrapped
        return wrapped


def server_layers(timeout: timedelta, policy: AccessPolicy) -> list[Layer]:
    return [
        tracing_layer,
        observe_layer,
        recovery_layer,
        deadline_layer(timeout),
        auth_layer(policy),
    ]
