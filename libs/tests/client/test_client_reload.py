"""Client deadlines and attempts follow client.grpc when its ConfigMap changes: the same
stub, no restart; a call in flight keeps the deadline it started with."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.testing.echo import EchoServicer

# From conftest.py: gRPC servers, replicas, and an App on a devcluster ConfigMap.
StartGrpc = Callable[..., Awaitable[Any]]
StartReplica = Callable[[str], Awaitable[tuple[Any, int]]]
StartConfigMapApp = Callable[..., Awaitable[Any]]

ECHO = "go-micro.echo"
WAIT_S = 10.0


def local_config(*endpoints: str) -> dict[str, Any]:
    """No servers of its own: the app is only a client of the echo service at `endpoints`."""
    return {
        "registry": {
            "type": "static",
            "services": [{"name": ECHO, "endpoints": list(endpoints)}],
        },
        "shutdown": {"drain_delay": "0s", "grace_period": "1s"},
    }


def client_config(timeout: str, max_attempts: int = 3) -> dict[str, Any]:
    # Its one replica keeps its standing for every attempt a call may make.
    retry_budget = {"failing_after": 5}
    grpc = {"timeout": timeout, "max_attempts": max_attempts, "retry_budget": retry_budget}
    return {"client": {"grpc": grpc}}


class GatedEcho(EchoServicer):
    """Echo("gate") answers once released; Echo("<seconds>") answers after that long."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.EchoResponse:
        if request.text == "gate":
            self.entered.set()
            await self.release.wait()
        else:
            await asyncio.sleep(float(request.text))
        return echo_pb2.EchoResponse(text=request.text)


async def test_a_shorter_deadline_applies_to_the_same_stub(
    start_grpc: StartGrpc, config_map_app: StartConfigMapApp
) -> None:
    server = await start_grpc(deadline=timedelta(seconds=5))  # the scripted EchoService
    running = await config_map_app(
        local=local_config(f"grpc://127.0.0.1:{server.port}"), remote=client_config("2s")
    )
    stub = running.ctx.client(echo_pb2_grpc.EchoServiceStub)
    slow = echo_pb2.EchoRequest(text="sleep:0.5")

    assert (await stub.Echo(slow)).text == "sleep:0.5"

    await running.change(client_config("200ms"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Echo(slow)
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED

    await running.change(client_config("2s"))
    assert (await stub.Echo(slow)).text == "sleep:0.5"


async def test_a_call_in_flight_keeps_the_deadline_it_started_with(
    start_grpc: StartGrpc, config_map_app: StartConfigMapApp
) -> None:
    gated = GatedEcho()
    server = await start_grpc(gated, deadline=timedelta(seconds=30))
    running = await config_map_app(
        local=local_config(f"grpc://127.0.0.1:{server.port}"), remote=client_config("20s")
    )
    stub = running.ctx.client(echo_pb2_grpc.EchoServiceStub)

    in_flight = asyncio.create_task(stub.Echo(echo_pb2.EchoRequest(text="gate")))
    await asyncio.wait_for(gated.entered.wait(), WAIT_S)
    await running.change(client_config("200ms"))
    gated.release.set()

    assert (await in_flight).text == "gate"  # its 20s deadline, not the new 200ms
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Echo(echo_pb2.EchoRequest(text="0.5"))
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


async def test_max_attempts_follows_the_config(
    start_replica: StartReplica, config_map_app: StartConfigMapApp
) -> None:
    replica, port = await start_replica("127.0.0.41")
    replica.fail_with = grpc.StatusCode.UNAVAILABLE
    running = await config_map_app(
        local=local_config(f"grpc://127.0.0.41:{port}"), remote=client_config("5s", 3)
    )
    stub = running.ctx.client(echo_pb2_grpc.EchoServiceStub)
    request = echo_pb2.EchoRequest(text="d")  # Echo has no side effects: retried

    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Echo(request)
    assert replica.calls == 3

    await running.change(client_config("5s", 1))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Echo(request)
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    assert replica.calls == 4
