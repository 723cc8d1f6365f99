"""A small service for the lifecycle tests, started as its own process:
`python libs/tests/app/runtime_service.py`, configured through MICRO__* variables.

EchoService.Echo("sleep:<seconds>") and GET /slow/<seconds> take that long; GET /inflight
answers how many of those are running, so a test knows its calls have arrived.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.app import ServiceContext, run
from micro.config.model import ServiceConfig
from micro.testing.echo import EchoServicer


class InFlight:
    count = 0


class SlowEcho(EchoServicer):
    async def Echo(self, request: echo_pb2.EchoRequest, context: Any) -> echo_pb2.EchoResponse:
        InFlight.count += 1
        try:
            await asyncio.sleep(float(request.text.removeprefix("sleep:") or 0))
        finally:
            InFlight.count -= 1
        return echo_pb2.EchoResponse(text=request.text)


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
    ctx.add_grpc_service(echo_pb2_grpc.add_EchoServiceServicer_to_server, SlowEcho())
    ctx.include_router(slow_router())

    async def farewell() -> None:
        ctx.logger.info("shutdown hook ran")

    ctx.on_shutdown(farewell)


if __name__ == "__main__":
    run("go-micro.test-srv", ServiceConfig, compose, version="test")
