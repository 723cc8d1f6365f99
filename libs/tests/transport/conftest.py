"""Handlers held busy on demand, for the shedding and drain tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from fastapi import APIRouter

from api.echo.v1 import echo_pb2
from micro.testing.echo import EchoServicer

# Held calls outlast the default 1 s server timeout on a busy machine.
HELD_S = timedelta(seconds=10)


class Gate:
    """Counts the calls that reach a handler and holds those asked to until opened."""

    def __init__(self) -> None:
        self.entered = 0
        self.opened = asyncio.Event()

    async def hold(self) -> None:
        self.entered += 1
        await asyncio.wait_for(self.opened.wait(), timeout=10)


@pytest.fixture
async def gate() -> AsyncIterator[Gate]:
    gate = Gate()
    yield gate
    gate.opened.set()  # nothing stays held past the test


class GatedEcho(EchoServicer):
    """Echo("hold") waits for the gate; any other text answers at once. Both count as
    having reached the handler."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.EchoResponse:
        if request.text == "hold":
            await self.gate.hold()
        else:
            self.gate.entered += 1
        return echo_pb2.EchoResponse(text=request.text)


def held_router(gate: Gate) -> APIRouter:
    """GET /hold waits for the gate; GET /quick answers at once."""
    router = APIRouter()

    @router.get("/hold")
    async def hold() -> dict[str, str]:
        await gate.hold()
        return {"held": "yes"}

    @router.get("/quick")
    async def quick() -> dict[str, str]:
        return {"quick": "yes"}

    return router
