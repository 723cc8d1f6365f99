"""The gRPC server's interceptor chain: tracing, access log + metrics, recovery,
deadline, caller identity (micro.identity), authentication and the client's address
(micro.transport.client_address), outermost first.

Each layer is an async context manager around the handler, so one chain serves unary and
streaming methods alike. The layers are small classes rather than @asynccontextmanager
generators, whose machinery adds its own cost to every layer of every call.
Recovery turns any exception into a status: a ServiceError or a downstream grpc.RpcError
keeps its code; anything else is logged with its traceback and the caller sees only
INTERNAL "internal error".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager, AsyncExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from micro import deadline, metrics, tracing
from micro.auth import AccessPolicy, acting_as
from micro.errors import INTERNAL_MESSAGE, STATUS_BY_NUMBER, ServiceError, invalid_argument
from micro.identity.guard import IdentityGuard
from micro.identity.principal import IDENTITY_METADATA_KEY, acting_for
from micro.transport.client_address import ProxyPolicy, ProxyRules, grpc_peer_ip, serving

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


class _CallLayer:
    """A layer's per-call state; subclasses override what they do around the handler."""

    __slots__ = ("call",)

    def __init__(self, call: GrpcCall) -> None:
        self.call = call

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, tb: Any
    ) -> bool:
        return False  # never swallows the exception


class TracingLayer(_CallLayer):
    """A SERVER span named after the method, in the caller's trace; it ends with the
    call's rpc.grpc.status_code and, unless OK, an ERROR status."""

    __slots__ = ("_span", "_token")

    async def __aenter__(self) -> None:
        call = self.call
        self._span = tracing.tracer().start_span(
            call.method.lstrip("/"),
            context=tracing.extract(call.text_metadata),
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.method": call.method},
            record_exception=False,
            set_status_on_exception=False,
        )
        self._token = otel_context.attach(trace.set_span_in_context(self._span))

    async def __aexit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, tb: Any
    ) -> bool:
        code = self.call.code
        self._span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code is not grpc.StatusCode.OK:
            self._span.set_status(Status(StatusCode.ERROR, code.name))
        otel_context.detach(self._token)
        self._span.end()
        return False


class ObserveLayer(_CallLayer):
    """Access log line and metrics, once the final code is known. Probes, reflection and
    the `quiet` methods (full names) log at DEBUG."""

    __slots__ = ("_quiet",)

    def __init__(self, call: GrpcCall, quiet: frozenset[str] = frozenset()) -> None:
        super().__init__(call)
        self._quiet = quiet

    async def __aexit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, tb: Any
    ) -> bool:
        call = self.call
        seconds = time.perf_counter() - call.started
        metrics.observe_server("grpc", call.method, call.code.name, seconds)
        quiet = call.method in self._quiet or call.method.startswith(QUIET_PREFIXES)
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
        return False


def _context_code(call: GrpcCall) -> grpc.StatusCode:
    # grpc.aio answers a bare int (or None) here in some versions, whatever the stubs say.
    code: object = call.context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    return (
        STATUS_BY_NUMBER.get(code, grpc.StatusCode.OK)
        if isinstance(code, int)
        else grpc.StatusCode.OK
    )


class RecoveryLayer(_CallLayer):
    """Records the call's final code, and turns an exception into a status."""

    __slots__ = ()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, tb: Any
    ) -> bool:
        call = self.call
        match error:
            case None | grpc.aio.AbortError():  # an abort: the handler chose the status
                call.code = _context_code(call)
            case asyncio.CancelledError():
                call.code = grpc.StatusCode.CANCELLED
            case ServiceError():
                call.code = error.code
                await call.context.abort(error.code, error.message, error.trailing_metadata())
            case grpc.RpcError():
                mapped = ServiceError.from_rpc_error(error)
                call.code = mapped.code
                await call.context.abort(mapped.code, mapped.message, mapped.trailing_metadata())
            case Exception():
                _log.error("[gRPC] %s failed", call.method, exc_info=error)
                call.code = grpc.StatusCode.INTERNAL
                await call.context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        return False


class _Deadline(_CallLayer):
    __slots__ = ("_budget", "_limit", "_serving", "_timeout")

    def __init__(self, call: GrpcCall, limit: float) -> None:
        super().__init__(call)
        self._limit = limit
        self._timeout: asyncio.Timeout | None = None
        self._serving: AbstractContextManager[None] | None = None

    async def __aenter__(self) -> None:
        call = self.call
        if call.response_streaming or self._limit <= 0:
            return
        remaining = call.context.time_remaining()
        self._budget = min(self._limit, remaining) if remaining is not None else self._limit
        self._timeout = asyncio.timeout(self._budget)
        await self._timeout.__aenter__()
        # The calls the handler makes get what is left of it (micro.deadline).
        self._serving = deadline.serving_for(self._budget)
        self._serving.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, tb: Any
    ) -> bool:
        if self._serving is not None:
            self._serving.__exit__(None, None, None)
        if self._timeout is None:
            return False
        try:
            await self._timeout.__aexit__(exc_type, error, tb)
        except TimeoutError:
            raise ServiceError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"{self.call.method} did not finish within {self._budget:.3f}s",
            ) from None
        return False


def deadline_layer(timeout: timedelta) -> Layer:
    """Cut a unary-response call at the configured timeout or the caller's deadline."""
    limit = timeout.total_seconds()
    return lambda call: _Deadline(call, limit)


class _ActingLayer(_CallLayer):
    """A layer that may make someone current for the handler (`_act`) and undoes it
    when the call ends."""

    __slots__ = ("_acting",)

    def __init__(self, call: GrpcCall) -> None:
        super().__init__(call)
        self._acting: AbstractContextManager[None] | None = None

    def _act(self, acting: AbstractContextManager[None]) -> None:
        self._acting = acting
        acting.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, tb: Any
    ) -> bool:
        if self._acting is not None:
            self._acting.__exit__(exc_type, error, tb)
        return False


class _Auth(_ActingLayer):
    __slots__ = ("_policy",)

    def __init__(self, call: GrpcCall, policy: AccessPolicy) -> None:
        super().__init__(call)
        self._policy = policy

    async def __aenter__(self) -> None:
        call = self.call
        principal = await self._policy.authenticate(call.method, call.metadata("authorization"))
        if principal is not None:
            trace.get_current_span().set_attribute("enduser.id", principal.user_id)
            self._act(acting_as(principal))


def auth_layer(policy: AccessPolicy) -> Layer:
    """The caller's principal for a protected method (or its refusal), for the handler."""
    return lambda call: _Auth(call, policy)


# Probes must reach every port whatever the caller: kubelets and load balancers carry
# no service-account token.
IDENTITY_EXEMPT_PREFIX = "/grpc.health.v1."


class _Identity(_ActingLayer):
    """Reflection is not exempt: it lists an internal port's whole API, and no internal
    caller needs it at run time; a person inspects the port with a token of its own."""

    __slots__ = ("_guard",)

    def __init__(self, call: GrpcCall, guard: IdentityGuard) -> None:
        super().__init__(call)
        self._guard = guard

    async def __aenter__(self) -> None:
        call = self.call
        if call.method.startswith(IDENTITY_EXEMPT_PREFIX):
            return
        token = call.metadata(IDENTITY_METADATA_KEY)
        caller = await self._guard.admit(call.method, token, call.context.peer)
        trace.get_current_span().set_attribute("micro.caller", caller.principal)
        self._act(acting_for(caller))


def identity_layer(guard: IdentityGuard) -> Layer:
    """The calling service's identity, verified and authorized, for the handler
    (micro.identity.current_caller); health checks stay open."""
    return lambda call: _Identity(call, guard)


class _Undecodable:
    """A request message that did not decode. grpc alone would answer UNKNOWN and log a
    traceback; inside the layers it is INVALID_ARGUMENT, logged and counted as any call."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def refusal(self) -> ServiceError:
        return invalid_argument(None, f"request: not a valid message ({self.reason})")


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError as error:
            return _Undecodable(str(error))

    return decode


def _wrap_unary(
    behavior: Callable[[Any, Any], Awaitable[Any]], layers: Sequence[Layer], method: str
) -> Callable[[Any, Any], Awaitable[Any]]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        call = GrpcCall(method, context, response_streaming=False)
        async with AsyncExitStack() as stack:
            for layer in layers:
                await stack.enter_async_context(layer(call))
            if type(request) is _Undecodable:
                raise request.refusal()
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
            if type(request) is _Undecodable:
                raise request.refusal()
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
    """The same handler with the layers around its behavior; a single request message
    that does not decode is refused INVALID_ARGUMENT inside them."""
    deserialize = handler.request_deserializer
    serialize = handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _wrap_unary(handler.unary_unary, layers, method), _tolerant(deserialize), serialize
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _wrap_unary(handler.stream_unary, layers, method), deserialize, serialize
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _wrap_streaming(handler.unary_stream, layers, method), _tolerant(deserialize), serialize
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


class _ClientAddress(_CallLayer):
    __slots__ = ("_policy", "_serving")

    def __init__(self, call: GrpcCall, policy: ProxyPolicy) -> None:
        super().__init__(call)
        self._policy = policy
        self._serving: AbstractContextManager[None] | None = None

    async def __aenter__(self) -> None:
        context = self.call.context

        def values(key: str) -> list[str]:
            # Every value of a repeated key, in order: the right-most hop counts.
            pairs = context.invocation_metadata() or ()
            return [v for k, v in pairs if k == key and isinstance(v, str)]

        self._serving = serving(grpc_peer_ip(context.peer()), values, self._policy.rules)
        self._serving.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, tb: Any
    ) -> bool:
        if self._serving is not None:
            self._serving.__exit__(exc_type, error, tb)
        return False


def client_address_layer(policy: ProxyPolicy) -> Layer:
    """micro.transport.client_address.client_address() for the handler."""
    return lambda call: _ClientAddress(call, policy)


def observe_layer(quiet: Iterable[str] = ()) -> Layer:
    methods = frozenset(quiet)
    return lambda call: ObserveLayer(call, methods)


def server_layers(
    timeout: timedelta,
    policy: AccessPolicy,
    identity: IdentityGuard | None = None,
    proxies: ProxyPolicy | None = None,
    quiet: Iterable[str] = (),
    *,
    shedding: Layer | None = None,
    fault: Layer | None = None,
) -> list[Layer]:
    """The chain, outermost first; the caller's identity (on a non-public port with
    identity on) is checked before the end user's token. `quiet`: full method names
    whose access log lines are DEBUG, like probes'. `shedding` goes first, so a shed
    call costs next to nothing; `fault` inside the deadline (micro.transport.fault)."""
    return [
        *([shedding] if shedding is not None else []),
        TracingLayer,
        observe_layer(quiet),
        RecoveryLayer,
        deadline_layer(timeout),
        *([fault] if fault is not None else []),
        *([identity_layer(identity)] if identity is not None else []),
        auth_layer(policy),
        client_address_layer(proxies if proxies is not None else ProxyPolicy(ProxyRules())),
    ]
