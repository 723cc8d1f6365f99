"""The client tests' replicas: plain gRPC servers on a host of their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.testing.echo import EchoServicer


class Replica(EchoServicer):
    """Answers its own host as the text; can fail every call (or every n-th: fail_every),
    or answer slowly."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.calls = 0
        self.called = asyncio.Event()
        self.fail_with: grpc.StatusCode | None = None
        self.fail_every = 1
        self.delay_s = 0.0

    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.EchoResponse:
        self.calls += 1
        self.called.set()
        if self.fail_with is not None and self.calls % self.fail_every == 0:
            await context.abort(self.fail_with, f"{self.host} fails")
        await asyncio.sleep(self.delay_s)
        return echo_pb2.EchoResponse(text=self.host)

    async def Append(
        self, request: echo_pb2.AppendRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.AppendResponse:
        self.calls += 1
        if self.fail_with is not None:
            await context.abort(self.fail_with, f"{self.host} fails")
        return echo_pb2.AppendResponse()


StartReplica = Callable[[str], Awaitable[tuple[Replica, int]]]


@pytest.fixture
async def start_replica() -> AsyncIterator[StartReplica]:
    """Start an EchoService server on <host>:0; answers (replica, bound port)."""
    servers: list[grpc.aio.Server] = []

    async def start(host: str) -> tuple[Replica, int]:
        replica = Replica(host)
        server = grpc.aio.server()
        echo_pb2_grpc.add_EchoServiceServicer_to_server(replica, server)
        port = server.add_insecure_port(f"{host}:0")
        await server.start()
        servers.append(server)
        return replica, port

    yield start
    await asyncio.gather(*(server.stop(0) for server in servers))
