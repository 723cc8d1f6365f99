"""Hedged calls through the balanced client, on real grpc.aio servers on loopback: a held
instance's calls are answered by the other one, and the held call is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.client import ClientFactory
from micro.config.model import (
    BalancingConfig,
    GrpcClientConfig,
    HedgingConfig,
    RetryBudgetConfig,
    StaticService,
)
from micro.registry import StaticDiscovery
from micro.testing import waiting
from micro.testing.echo import EchoServicer

HELD_CALLS = 3  # calls that reach the held instance in a test


class Held(EchoServicer):
    """Echo waits until released; counts the calls the client cancelled meanwhile."""

    def __init__(self) -> None:
        self.calls = 0
        self.cancelled = 0
        self.released = asyncio.Event()

    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.EchoResponse:
        self.calls += 1
        try:
            await self.released.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return echo_pb2.EchoResponse(text="held")


class Quick(EchoServicer):
    def __init__(self) -> None:
        self.calls = 0

    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.EchoResponse:
        self.calls += 1
        return echo_pb2.EchoResponse(text="quick")


@pytest.fixture
async def held_and_quick() -> AsyncIterator[tuple[Held, Quick, list[str]]]:
    """A held and a quick instance on loopback, their endpoints; stopped after the test."""
    held, quick = Held(), Quick()
    servers, endpoints = [], []
    for host, servicer in (("127.0.0.31", held), ("127.0.0.32", quick)):
        server = grpc.aio.server()
        echo_pb2_grpc.add_EchoServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port(f"{host}:0")
        await server.start()
        servers.append(server)
        endpoints.append(f"grpc://{host}:{port}")
    yield held, quick, endpoints
    held.released.set()
    await asyncio.gather(*(server.stop(0) for server in servers))


def factory_for(service: str, endpoints: list[str], budget: RetryBudgetConfig) -> ClientFactory:
    discovery = StaticDiscovery([StaticService(name=service, endpoints=tuple(endpoints))])
    cfg = GrpcClientConfig(
        timeout=timedelta(seconds=5),
        hedging=HedgingConfig(fallback_delay=timedelta(milliseconds=20)),
        retry_budget=budget,
        # The held instance keeps being picked now and then, however slow it looks.
        balancing=BalancingConfig(idle_pick_after=timedelta(milliseconds=1)),
    )
    return ClientFactory(discovery, cfg)


def hedges(name: str, service: str) -> float:
    return REGISTRY.get_sample_value(f"micro_client_hedges_{name}_total", {"service": service}) or 0


async def test_a_held_call_is_answered_by_the_hedge_and_cancelled(
    held_and_quick: tuple[Held, Quick, list[str]],
) -> None:
    held, quick, endpoints = held_and_quick
    service = "go-micro.hedged"
    factory = factory_for(service, endpoints, RetryBudgetConfig())
    stub = factory.stub(service, echo_pb2_grpc.EchoServiceStub)
    answers = []
    for _ in range(100):  # until the held instance got its share (p2c: half the picks)
        answers.append((await stub.Echo(echo_pb2.EchoRequest(text="d"))).text)
        if held.calls == HELD_CALLS:
            break
    await waiting.eventually(lambda: held.cancelled == held.calls, "the held calls' cancellation")
    endpoints_left = factory.pool(service).endpoints()
    await factory.close()
    assert held.calls == HELD_CALLS
    assert set(answers) == {"quick"}
    assert quick.calls == len(answers)
    assert hedges("sent", service) == HELD_CALLS
    assert hedges("won", service) == HELD_CALLS
    assert [e.outstanding for e in endpoints_left] == [0, 0]  # the loser's count released


async def test_hedges_are_bounded_by_the_retry_budget(
    held_and_quick: tuple[Held, Quick, list[str]],
) -> None:
    held, _, endpoints = held_and_quick
    service = "go-micro.hedged-broke"
    tokens = 2  # the bucket starts full, and nothing refills it
    budget = RetryBudgetConfig(ratio=0.0, min_per_second=0.0, burst=tokens)
    factory = factory_for(service, endpoints, budget)
    stub = factory.stub(service, echo_pb2_grpc.EchoServiceStub)
    unhedged: list[grpc.StatusCode] = []
    for _ in range(100):
        try:
            await stub.Echo(echo_pb2.EchoRequest(text="d"), timeout=0.3)
        except grpc.aio.AioRpcError as error:
            unhedged.append(error.code())
        if held.calls == tokens + 1:
            break
    await factory.close()
    assert held.calls == tokens + 1
    assert hedges("sent", service) == tokens
    assert unhedged == [grpc.StatusCode.DEADLINE_EXCEEDED]  # no token left for its hedge
