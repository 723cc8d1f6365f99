"""Hedged calls through the balanced client, on real grpc.aio servers on loopback: a held
instance's calls are answered by the other one, and the held call is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from functools import partial
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.client import ClientFactory, InstancePool
from micro.client.pool import Endpoint
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
    """Answers at once, or fails with `fail_with`."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail_with: grpc.StatusCode | None = None

    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.EchoResponse:
        self.calls += 1
        if self.fail_with is not None:
            await context.abort(self.fail_with, "quick fails")
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
    return ClientFactory(discovery, factory_cfg(budget))


def factory_cfg(budget: RetryBudgetConfig, **more: Any) -> GrpcClientConfig:
    return GrpcClientConfig(
        timeout=timedelta(seconds=5),
        hedging=HedgingConfig(fallback_delay=timedelta(milliseconds=20)),
        retry_budget=budget,
        # The held instance keeps being picked now and then, however slow it looks: the
        # call itself, not a copy aside, so that its hedge is what answers.
        balancing=BalancingConfig(idle_pick_after=timedelta(milliseconds=1), probe_aside=False),
        **more,
    )


async def started(pool: InstancePool) -> list[Endpoint]:
    await pool.ready()
    return pool.endpoints()


def picked(call: asyncio.Future[Any], held: Held) -> Callable[[], bool]:
    """Whether the call has ended, or reached the held instance (its first call)."""
    return lambda: call.done() or held.calls == 1


def called_after(servicer: Quick, before: int) -> bool:
    return servicer.calls > before


def idle(endpoint: Endpoint) -> bool:
    return endpoint.outstanding == 0


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
    # Each held call was a first attempt hedged to the quick instance (won), or, when a
    # quick answer was slow on a loaded machine, a hedge to the held one (lost).
    assert hedges("sent", service) == HELD_CALLS
    assert 1 <= hedges("won", service) <= HELD_CALLS
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
    for _ in range(100):  # until a call held on its first attempt gets no hedge
        try:
            await stub.Echo(echo_pb2.EchoRequest(text="d"), timeout=0.3)
        except grpc.aio.AioRpcError as error:
            unhedged.append(error.code())
            break
    await factory.close()
    assert unhedged == [grpc.StatusCode.DEADLINE_EXCEEDED]
    assert hedges("sent", service) == tokens  # every token spent, none more
    assert held.calls == tokens + 1  # one per token, and the call that found none


async def test_a_hedge_failing_on_its_instance_leaves_the_call_to_the_first_attempt(
    held_and_quick: tuple[Held, Quick, list[str]],
) -> None:
    """INTERNAL from the hedge's instance is that instance's failure, not the answer: the
    call waits for the first attempt, which answers."""
    held, quick, endpoints = held_and_quick
    quick.fail_with = grpc.StatusCode.INTERNAL
    service = "go-micro.hedged-failing"
    factory = factory_for(service, endpoints, RetryBudgetConfig())
    stub = factory.stub(service, echo_pb2_grpc.EchoServiceStub)
    (hedged_to,) = [
        e for e in await started(factory.pool(service)) if e.target.startswith("127.0.0.32:")
    ]
    answer = None
    for _ in range(100):  # until a call is sent to the held instance first
        quick_before = quick.calls
        call = asyncio.ensure_future(stub.Echo(echo_pb2.EchoRequest(text="d")))
        await waiting.eventually(picked(call, held), "a pick")
        if held.calls == 0:  # sent to the failing instance first: its error is the answer
            with pytest.raises(grpc.aio.AioRpcError):
                await call
            continue
        await waiting.eventually(partial(called_after, quick, quick_before), "the hedge")
        await waiting.eventually(partial(idle, hedged_to), "the hedge's failure")
        assert not call.done()
        held.released.set()
        answer = (await call).text
        break
    await factory.close()
    assert answer == "held"
    assert hedges("sent", service) == 1


async def test_an_override_turns_hedging_off_for_one_method(
    held_and_quick: tuple[Held, Quick, list[str]],
) -> None:
    held, _, endpoints = held_and_quick
    service = "go-micro.hedged-not-echo"
    factory = factory_for(service, endpoints, RetryBudgetConfig())
    off = {service: {"methods": {"Echo": {"hedging": {"enabled": False}}}}}
    factory.update(factory_cfg(RetryBudgetConfig(), dependencies=off))
    stub = factory.stub(service, echo_pb2_grpc.EchoServiceStub)
    failed: list[grpc.StatusCode] = []
    for _ in range(100):  # until a call is sent to the held instance
        try:
            await stub.Echo(echo_pb2.EchoRequest(text="d"), timeout=0.2)
        except grpc.aio.AioRpcError as error:
            failed.append(error.code())
            break
    await factory.close()
    assert failed == [grpc.StatusCode.DEADLINE_EXCEEDED]  # waited for the held instance
    assert held.calls == 1
    assert hedges("sent", service) == 0
