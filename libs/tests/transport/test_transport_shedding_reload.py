"""server.shedding and fault follow the config at run time on a running App's servers
(its ConfigMap changes; the servers stay the same). Turning either back is the same
update (test_transport_shedding_limit, test_transport_fault)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.app import ServiceContext
from micro.config.model import ServiceConfig
from micro.testing.echo import EchoServicer
from micro.transport.grpc import GrpcServer
from micro.transport.http import HttpServer

StartConfigMapApp = Callable[..., Awaitable[Any]]

LOCAL = {
    "server": {"http": {"addr": "127.0.0.1:0"}, "grpc": {"addr": "127.0.0.1:0"}},
    "registry": {"type": "static"},
    "identity": {"mode": "off"},
    "shutdown": {"drain_delay": "0s", "grace_period": "1s"},
}


class Echo(EchoServicer):
    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.EchoResponse:
        return echo_pb2.EchoResponse(text=request.text)


async def serve_echo(ctx: ServiceContext[ServiceConfig]) -> None:
    ctx.add_grpc_service(echo_pb2_grpc.add_EchoServiceServicer_to_server, Echo())


async def test_a_config_change_reaches_the_limiters_and_the_fault_layer(
    config_map_app: StartConfigMapApp,
) -> None:
    running = await config_map_app(local=LOCAL, remote={}, compose=serve_echo)
    grpc_server = running.app.server("grpc")
    http_server = running.app.server("http")
    assert isinstance(grpc_server, GrpcServer)
    assert isinstance(http_server, HttpServer)
    assert grpc_server.shedding.limit == http_server.shedding.limit == 20

    tight = {"shedding": {"min_limit": 2, "max_limit": 2}}
    await running.change({"server": tight, "fault": {"unavailable_share": 1.0}})
    assert grpc_server.shedding.limit == http_server.shedding.limit == 2
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.ctx.grpc_port}") as channel:
        echo = echo_pb2_grpc.EchoServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await echo.Echo(echo_pb2.EchoRequest(text="x"), timeout=10)
        assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
