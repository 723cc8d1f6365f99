"""Drain of the HTTP server: from the start of shutdown, every response carries
`Connection: close`, so a keep-alive client opens its next request on a new connection
(to another pod, once discovery has moved on) instead of sending it down one that the
listener's close will cut under it. gRPC's GOAWAY, sent by grpc.aio's server.stop, does
the same for channels.
"""

from __future__ import annotations

from micro.health import Health
from micro.transport.http_middleware import ASGIApp, Message, Receive, Scope, Send


class DrainMiddleware:
    """Adds `Connection: close` to every response once `health` is shutting down."""

    def __init__(self, app: ASGIApp, *, health: Health) -> None:
        self.app = app
        self.health = health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and self.health.shutting_down:
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"
                ]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing_send)
