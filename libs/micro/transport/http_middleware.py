"""Pure ASGI middleware of the HTTP server (pure ASGI keeps contextvars and streaming
intact): tracing, access log + metrics, recovery, timeout, body size limit, auth, and the
client's address.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import grpc
from opentelemetry.trace import SpanKind, Status, StatusCode

from micro import deadline, metrics, tracing
from micro.auth import AccessPolicy, acting_as
from micro.errors import INTERNAL_MESSAGE, ServiceError, code_for_http_status, too_large
from micro.transport.client_address import ProxyPolicy, parse_ip, serving

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_log = logging.getLogger("micro.http")

# Probes and scrapes come all the time; they log at DEBUG only and are never limited.
QUIET_PATHS = frozenset({"/healthz", "/readyz"})


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _route_label(scope: Scope) -> str:
    # The route template keeps the metric's cardinality bounded ("/data/{device}").
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


async def send_error(
    send: Send,
    error: ServiceError,
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer `error` as its JSON body, with its own headers (Retry-After) and extra ones."""
    body = json.dumps(error.to_json()).encode()
    own = [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.http_headers().items()
    ]
    await send(
        {
            "type": "http.response.start",
            "status": error.http_status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *own,
                *extra_headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _ResponseWatch:
    """Wraps send to remember whether and with what status the response started."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status: int | None = None

    @property
    def started(self) -> bool:
        return self.status is not None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
        await self._send(message)


class TracingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parent = tracing.extract(_headers(scope))
        watch = _ResponseWatch(send)
        with tracing.tracer().start_as_current_span(
            f"HTTP {scope['method']}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": scope["method"], "url.path": scope["path"]},
        ) as span:
            try:
                await self.app(scope, receive, watch)
            finally:
                span.update_name(f"{scope['method']} {_route_label(scope)}")
                status = watch.status or 500
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR, str(status)))


class ObserveMiddleware:
    """One access log line and the server metrics per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        watch = _ResponseWatch(send)
        try:
            await self.app(scope, receive, watch)
        finally:
            seconds = time.perf_counter() - started
            status = watch.status or 500
            route = _route_label(scope)
            code = "OK" if status < 400 else code_for_http_status(status).name
            metrics.observe_server("http", f"{scope['method']} {route}", code, seconds)
            level = logging.DEBUG if scope["path"] in QUIET_PATHS else logging.INFO
            if status >= 500:
                level = logging.ERROR
            _log.log(
                level,
                "[HTTP] %s %s %d",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "fields": {
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(seconds * 1000, 3),
                    }
                },
            )


class RecoveryMiddleware:
    """An exception no handler answered becomes a 500 JSON body without a traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        watch = _ResponseWatch(send)
        try:
            await self.app(scope, receive, watch)
        except Exception:
            _log.exception("[HTTP] %s %s failed", scope["method"], scope["path"])
            if not watch.started:
                await send_error(send, ServiceError(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE))


class TimeoutMiddleware:
    """A request that outlives server.http.timeout is answered 504; the calls it makes
    meanwhile get what is left of that time (micro.deadline)."""

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.seconds <= 0 or scope["path"] in QUIET_PATHS:
            await self.app(scope, receive, send)
            return
        watch = _ResponseWatch(send)
        try:
            with deadline.serving_for(self.seconds):
                async with asyncio.timeout(self.seconds):
                    await self.app(scope, receive, watch)
        except TimeoutError:
            if watch.started:
                raise
            message = f"{scope['method']} {scope['path']} did not finish within {self.seconds}s"
            await send_error(send, ServiceError(grpc.StatusCode.DEADLINE_EXCEEDED, message))


class BodyLimitMiddleware:
    """Bodies over server.http.max_body_bytes are answered 413, declared or streamed.

    A streamed body is counted as it arrives; at the limit the 413 goes out at once and
    the application sees a disconnect (whatever it answers then is dropped), since
    frameworks turn errors raised while reading a body into their own 400.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Send, *, close: bool) -> None:
        error = too_large(f"request body is larger than {self.max_bytes} bytes")
        headers = [(b"connection", b"close")] if close else []
        await send_error(send, error, headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _headers(scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, close=True)
            return
        received = 0
        refused = False
        watch = _ResponseWatch(send)

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not watch.started:
                    refused = True
                    # Read the rest (the request timeout bounds it) so the client, still
                    # sending, gets the 413 rather than a reset connection.
                    while message.get("more_body", False):
                        message = await receive()
                        if message["type"] != "http.request":
                            break
                    await self._refuse(send, close=False)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await watch(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused:
                raise


class AuthMiddleware:
    """Protected paths need a valid bearer token; the principal is the call's context."""

    def __init__(self, app: ASGIApp, *, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.policy.empty or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        try:
            principal = await self.policy.authenticate(
                scope["path"], _headers(scope).get("authorization")
            )
        except ServiceError as error:
            headers: list[tuple[bytes, bytes]] = []
            if error.code is grpc.StatusCode.UNAUTHENTICATED:
                headers.append((b"www-authenticate", b"Bearer"))
            await send_error(send, error, headers)
            return
        with acting_as(principal):
            await self.app(scope, receive, send)


class ClientAddressMiddleware:
    """Makes micro.transport.client_address.client_address() answer inside the request."""

    def __init__(self, app: ASGIApp, *, policy: ProxyPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        peer = parse_ip(str(client[0])) if client else None

        def header_values(name: str) -> list[str]:
            key = name.encode("latin-1")
            return [v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == key]

        with serving(peer, header_values, self.policy.rules):
            await self.app(scope, receive, send)
