"""A small service for the lifecycle tests, started as its own process:
`python libs/tests/app/runtime_service.py`, configured through MICRO__* variables.

DevSvc.Get("sleep:<seconds>") and GET /slow/<seconds> take that long; GET /inflight
answers how many of those are running, so a test knows its calls have arrived.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from api.device_srv.v1 import device_pb2, device_pb2_grpc
from micro.app import ServiceContext, run
from micro.config.model import ServiceConfig


class InFlight:
    count = 0


class SlowDevices(device_pb2_grpc.DevSvcServicer):
    async def Get(self, request: device_pb2.DeviceName, context: Any) -> device_pb2.Device:
        InFlight.count += 1
        try:
            await asyncio.sleep(float(request.name.removeprefix("sleep:") or 0))
        finally:
            InFlight.count -= 1
        return device_pb2.Device(name=request.name, active=True)

    async def List(
        self, request: device_pb2.ListDevicesRequest, context: Any
    ) -> device_pb2.ListDevicesResponse:
        return device_pb2.ListDevicesResponse()


def slow_router() -> APIRouter:
    router = APIRouter()

    @router.get("/slow/{seconds}")
    async def slow(seconds: float) -> dict[str, float]:
        InFlight.count += 1
        try:
            await asyncio.sleep(seconds)
        finally:
            InFlight.count -= 1
        return {"slept": seconds}

    @router.get("/inflight")
    async def inflight() -> dict[str, int]:
        return {"count": InFlight.count}

    return router


async def compose(ctx: ServiceContext[ServiceConfig]) -> None:
    ctx.add_grpc_service(
        device_pb2_grpc.add_DevSvcServicer_to_server, SlowDevices(), "device_srv.v1.DevSvc"
    )
    ctx.include_router(slow_router())

    async def farewell() -> None:
        ctx.logger.info("shutdown hook ran")

    ctx.on_shutdown(farewell)


if __name__ == "__main__":
    run("go-micro.test-srv", ServiceConfig, compose, version="test")
