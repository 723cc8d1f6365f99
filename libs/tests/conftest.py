"""Shared fixtures for the libs tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest

from api.device_srv.v1 import device_pb2, device_pb2_grpc
from micro.auth import AccessPolicy, current_principal
from micro.config.model import GrpcServerConfig, HttpServerConfig
from micro.errors import ServiceError
from micro.health import Health
from micro.tracing import current_trace_id
from micro.transport.grpc import GrpcServer
from micro.transport.http import HttpServer

DEVICE_SERVICE = "device_srv.v1.DevSvc"


class ScriptedDevices(device_pb2_grpc.DevSvcServicer):
    """DevSvc whose Get does what the device name says: the runtime tests' handler.

    "code:NOT_FOUND" raises ServiceError(NOT_FOUND, field="name"); "boom" raises a plain
    exception; "sleep:0.3" waits, then answers; "whoami" answers the principal's user
    name; "trace" answers the current trace id; anything else answers itself, active.
    """

    async def Get(
        self, request: device_pb2.DeviceName, context: grpc.aio.ServicerContext[Any, Any]
    ) -> device_pb2.Device:
        name = request.name
        if name.startswith("code:"):
            code = grpc.StatusCode[name.removeprefix("code:")]
            raise ServiceError(code, f"name: scripted {code.name}", field="name")
        if name == "boom":
            raise RuntimeError("secret-internal-detail")
        if name.startswith("sleep:"):
            await asyncio.sleep(float(name.removeprefix("sleep:")))
            return device_pb2.Device(name=name, active=True)
        if name == "whoami":
            principal = current_principal()
            return device_pb2.Device(name=principal.user_name if principal else "", active=True)
        if name == "trace":
            return device_pb2.Device(name=current_trace_id(), active=True)
        return device_pb2.Device(name=name, active=True)

    async def List(
        self, request: device_pb2.ListDevicesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> device_pb2.ListDevicesResponse:
        return device_pb2.ListDevicesResponse(devices=[device_pb2.Device(name="d1", active=True)])


StartGrpc = Callable[..., Awaitable[GrpcServer]]
StartHttp = Callable[..., Awaitable[HttpServer]]


@pytest.fixture
async def start_grpc() -> AsyncIterator[StartGrpc]:
    """Start gRPC servers on 127.0.0.1:0; every one is stopped after the test."""
    started: list[GrpcServer] = []

    async def start(
        servicer: Any = None,
        *,
        add: Any = device_pb2_grpc.add_DevSvcServicer_to_server,
        name: str = DEVICE_SERVICE,
        health: Health | None = None,
        policy: AccessPolicy | None = None,
        deadline: timedelta = timedelta(seconds=2),
        max_message_bytes: int = 4 << 20,
        serving: bool = True,
    ) -> GrpcServer:
        health = health if health is not None else Health()
        config = GrpcServerConfig(
            addr="127.0.0.1:0", timeout=deadline, max_message_bytes=max_message_bytes
        )
        server = GrpcServer(config, health=health, policy=policy)
        server.add_service(add, servicer if servicer is not None else ScriptedDevices(), name)
        await server.start()
        started.append(server)
        if serving:
            await health.set_serving()
        return server

    yield start
    for server in started:
        await server.stop(0)


@pytest.fixture
async def start_http() -> AsyncIterator[StartHttp]:
    """Start HTTP servers on 127.0.0.1:0; every one is stopped after the test."""
    started: list[HttpServer] = []

    async def start(
        *routers: Any,
        health: Health | None = None,
        policy: AccessPolicy | None = None,
        serving: bool = True,
        **config: Any,
    ) -> HttpServer:
        health = health if health is not None else Health()
        server = HttpServer(
            HttpServerConfig(addr="127.0.0.1:0", **config),
            health=health,
            policy=policy,
            title="test",
            version="v0",
        )
        for router in routers:
            server.include_router(router)
        await server.start()
        started.append(server)
        if serving:
            await health.set_serving()
        return server

    yield start
    for server in started:
        await server.stop(1)


@pytest.fixture
async def grpc_channel_to() -> AsyncIterator[Callable[[GrpcServer], grpc.aio.Channel]]:
    """Open channels to started servers; all are closed after the test."""
    channels: list[grpc.aio.Channel] = []

    def open_channel(server: GrpcServer) -> grpc.aio.Channel:
        channels.append(grpc.aio.insecure_channel(f"127.0.0.1:{server.port}"))
        return channels[-1]

    yield open_channel
    for channel in channels:
        await channel.close(None)
