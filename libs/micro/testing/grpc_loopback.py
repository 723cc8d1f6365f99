"""Services on the framework's real gRPC server, on a free loopback port, for tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc

from micro.config.model import GrpcServerConfig
from micro.health import Health
from micro.registry.endpoints import format_endpoint, grpc_target
from micro.transport.grpc import AddToServer, GrpcServer

# A generated `add_XServicer_to_server` and its servicer; X's full name comes from the
# descriptor, as ServiceContext.add_grpc_service reads it.
Service = tuple[AddToServer, Any]


@contextlib.asynccontextmanager
async def loopback_grpc_endpoint(*services: Service) -> AsyncIterator[str]:
    """Start a GrpcServer on 127.0.0.1:0 with these services; yield its endpoint
    ("grpc://127.0.0.1:<port>", as a static registry names it). Stopped on exit."""
    server = GrpcServer(GrpcServerConfig(addr="127.0.0.1:0"), health=Health())
    for add_to_server, servicer in services:
        server.add_service(add_to_server, servicer)
    port = await server.start()
    try:
        yield format_endpoint("grpc", "127.0.0.1", port)
    finally:
        await server.stop(0)


@contextlib.asynccontextmanager
async def loopback_grpc_channel(*services: Service) -> AsyncIterator[grpc.aio.Channel]:
    """Start a GrpcServer on 127.0.0.1:0 with these services; yield a channel to it. The
    channel is closed and the server stopped on exit."""
    async with (
        loopback_grpc_endpoint(*services) as endpoint,
        grpc.aio.insecure_channel(grpc_target(endpoint)) as channel,
    ):
        yield channel
