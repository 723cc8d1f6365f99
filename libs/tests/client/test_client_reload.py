"""Client deadlines and attempts follow client.grpc when its ConfigMap changes: the same
stub, no restart; a call in flight keeps the deadline it started with."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest

from api.device_srv.v1 import device_pb2, device_pb2_grpc

# From conftest.py: gRPC servers, replicas, and an App on a devcluster ConfigMap.
StartGrpc = Callable[..., Awaitable[Any]]
StartReplica = Callable[[str], Awaitable[tuple[Any, int]]]
StartConfigMapApp = Callable[..., Awaitable[Any]]

DEVICE_SRV = "go-micro.device-srv"
WAIT_S = 10.0


def local_config(*endpoints: str) -> dict[str, Any]:
    """No servers of its own: the app is only a client of device-srv at `endpoints`."""
    return {
        "registry": {
            "type": "static",
            "services": [{"name": DEVICE_SRV, "endpoints": list(endpoints)}],
        },
        "shutdown": {"drain_delay": "0s", "grace_period": "1s"},
    }


def client_config(timeout: str, max_attempts: int = 3) -> dict[str, Any]:
    return {"client": {"grpc": {"timeout": timeout, "max_attempts": max_attempts}}}


class GatedDevices(device_pb2_grpc.DevSvcServicer):
    """Get("gate") answers once released; Get("<seconds>") answers after that long."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def Get(
        self, request: device_pb2.DeviceName, context: grpc.aio.ServicerContext[Any, Any]
    ) -> device_pb2.Device:
        if request.name == "gate":
            self.entered.set()
            await self.release.wait()
        else:
            await asyncio.sleep(float(request.name))
        return device_pb2.Device(name=request.name, active=True)

    async def List(
        self, request: device_pb2.ListDevicesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> device_pb2.ListDevicesResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not used by these tests")


async def test_a_shorter_deadline_applies_to_the_same_stub(
    start_grpc: StartGrpc, config_map_app: StartConfigMapApp
) -> None:
    server = await start_grpc(deadline=timedelta(seconds=5))  # the scripted DevSvc
    running = await config_map_app(
        local=local_config(f"grpc://127.0.0.1:{server.port}"), remote=client_config("2s")
    )
    stub = running.ctx.client(device_pb2_grpc.DevSvcStub)
    slow = device_pb2.DeviceName(name="sleep:0.5")

    assert (await stub.Get(slow)).name == "sleep:0.5"

    await running.change(client_config("200ms"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Get(slow)
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED

    await running.change(client_config("2s"))
    assert (await stub.Get(slow)).name == "sleep:0.5"


async def test_a_call_in_flight_keeps_the_deadline_it_started_with(
    start_grpc: StartGrpc, config_map_app: StartConfigMapApp
) -> None:
    devices = GatedDevices()
    server = await start_grpc(devices, deadline=timedelta(seconds=30))
    running = await config_map_app(
        local=local_config(f"grpc://127.0.0.1:{server.port}"), remote=client_config("20s")
    )
    stub = running.ctx.client(device_pb2_grpc.DevSvcStub)

    in_flight = asyncio.create_task(stub.Get(device_pb2.DeviceName(name="gate")))
    await asyncio.wait_for(devices.entered.wait(), WAIT_S)
    await running.change(client_config("200ms"))
    devices.release.set()

    assert (await in_flight).name == "gate"  # its 20s deadline, not the new 200ms
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Get(device_pb2.DeviceName(name="0.5"))
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


async def test_max_attempts_follows_the_config(
    start_replica: StartReplica, config_map_app: StartConfigMapApp
) -> None:
    replica, port = await start_replica("127.0.0.41")
    replica.fail_with = grpc.StatusCode.UNAVAILABLE
    running = await config_map_app(
        local=local_config(f"grpc://127.0.0.41:{port}"), remote=client_config("5s", 3)
    )
    stub = running.ctx.client(device_pb2_grpc.DevSvcStub)
    request = device_pb2.DeviceName(name="d")  # Get has no side effects: retried

    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Get(request)
    assert replica.calls == 3

    await running.change(client_config("5s", 1))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Get(request)
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    assert replica.calls == 4
