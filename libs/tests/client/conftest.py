"""The client tests' replicas: plain gRPC servers on a host of their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from api.device_srv.v1 import device_pb2, device_pb2_grpc
from api.user_srv.v1 import user_pb2, user_pb2_grpc


class Replica(device_pb2_grpc.DevSvcServicer, user_pb2_grpc.UserServiceServicer):
    """Answers its own host as the device name; can fail every call, or answer slowly."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.calls = 0
        self.called = asyncio.Event()
        self.fail_with: grpc.StatusCode | None = None
        self.delay_s = 0.0

    async def Get(
        self, request: device_pb2.DeviceName, context: grpc.aio.ServicerContext[Any, Any]
    ) -> device_pb2.Device:
        self.calls += 1
        self.called.set()
        if self.fail_with is not None:
            await context.abort(self.fail_with, f"{self.host} fails")
        await asyncio.sleep(self.delay_s)
        return device_pb2.Device(name=self.host, active=True)

    async def CreateUser(
        self, request: user_pb2.CreateUserRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> user_pb2.CreateUserResponse:
        self.calls += 1
        if self.fail_with is not None:
            await context.abort(self.fail_with, f"{self.host} fails")
        return user_pb2.CreateUserResponse()

    async def _not_here(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not used by these tests")

    List = GetUser = ListUsers = VerifyPassword = _not_here


StartReplica = Callable[[str], Awaitable[tuple[Replica, int]]]


@pytest.fixture
async def start_replica() -> AsyncIterator[StartReplica]:
    """Start a DevSvc + UserService server on <host>:0; answers (replica, bound port)."""
    servers: list[grpc.aio.Server] = []

    async def start(host: str) -> tuple[Replica, int]:
        replica = Replica(host)
        server = grpc.aio.server()
        device_pb2_grpc.add_DevSvcServicer_to_server(replica, server)
        user_pb2_grpc.add_UserServiceServicer_to_server(replica, server)
        port = server.add_insecure_port(f"{host}:0")
        await server.start()
        servers.append(server)
        return replica, port

    yield start
    await asyncio.gather(*(server.stop(0) for server in servers))
