"""Deadline propagation: a call made while serving a request gets what is left of that
request's deadline (minus a margin); one with nothing left is not sent."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from fastapi import APIRouter

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro import deadline
from micro.client import ClientFactory
from micro.config.model import GrpcClientConfig, StaticService
from micro.registry import StaticDiscovery
from micro.testing.echo import EchoServicer
from micro.testing.grpc_loopback import loopback_grpc_endpoint


class Clock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


def test_outside_a_request_a_call_keeps_its_own_timeout() -> None:
    assert deadline.remaining_s() is None
    assert deadline.outgoing_timeout_s(5.0, 0.1) == 5.0


def test_inside_a_request_a_call_gets_the_rest_minus_the_margin() -> None:
    clock = Clock()
    with deadline.serving_for(1.0, clock):
        clock.now += 0.3
        assert deadline.outgoing_timeout_s(5.0, 0.1, clock) == pytest.approx(0.6)
        assert deadline.outgoing_timeout_s(0.2, 0.1, clock) == pytest.approx(0.2)
        clock.now += 0.65
        assert deadline.outgoing_timeout_s(5.0, 0.1, clock) <= 0
    assert deadline.remaining_s(clock) is None


def test_a_nested_request_never_extends_the_outer_deadline() -> None:
    clock = Clock()
    with deadline.serving_for(1.0, clock), deadline.serving_for(5.0, clock):
        assert deadline.remaining_s(clock) == pytest.approx(1.0)
    with deadline.serving_for(1.0, clock), deadline.serving_for(0.5, clock):
        assert deadline.remaining_s(clock) == pytest.approx(0.5)


SERVICE_B, SERVICE_C = "go-micro.b", "go-micro.c"


class Hop(EchoServicer):
    """Passes Echo on to the next hop; the last hop answers the time it was given."""

    def __init__(self, downstream: Any = None) -> None:
        self.downstream = downstream
        self.calls = 0

    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.EchoResponse:
        self.calls += 1
        if self.downstream is not None:
            response: echo_pb2.EchoResponse = await self.downstream.Echo(request)
            return response
        return echo_pb2.EchoResponse(text=str(context.time_remaining()))


@contextlib.asynccontextmanager
async def client_of(endpoint: str, name: str, margin: str) -> AsyncIterator[Any]:
    """A stub of `name` at `endpoint` whose own timeout (5s) is far above the caller's."""
    discovery = StaticDiscovery([StaticService(name=name, endpoints=(endpoint,))])
    cfg = GrpcClientConfig.model_validate({"timeout": "5s", "deadline": {"margin": margin}})
    factory = ClientFactory(discovery, cfg)
    try:
        yield factory.stub(name, echo_pb2_grpc.EchoServiceStub)
    finally:
        await factory.close()


async def test_the_last_of_two_hops_sees_the_first_callers_deadline_reduced() -> None:
    add = echo_pb2_grpc.add_EchoServiceServicer_to_server
    async with contextlib.AsyncExitStack() as stack:
        c = Hop()
        c_endpoint = await stack.enter_async_context(loopback_grpc_endpoint((add, c)))
        b = Hop(await stack.enter_async_context(client_of(c_endpoint, SERVICE_C, "100ms")))
        b_endpoint = await stack.enter_async_context(loopback_grpc_endpoint((add, b)))
        a = Hop(await stack.enter_async_context(client_of(b_endpoint, SERVICE_B, "100ms")))
        a_endpoint = await stack.enter_async_context(loopback_grpc_endpoint((add, a)))
        channel = await stack.enter_async_context(
            grpc.aio.insecure_channel(a_endpoint.removeprefix("grpc://"))
        )
        answer = await echo_pb2_grpc.EchoServiceStub(channel).Echo(
            echo_pb2.EchoRequest(text="d"), timeout=1.0
        )
    seen_by_c = float(answer.text)
    # A's caller gave 1s; A and B each kept back their 100ms margin (not C's own 5s).
    assert 0 < seen_by_c < 1.0 - 2 * 0.1
    assert (a.calls, b.calls, c.calls) == (1, 1, 1)


async def test_a_call_with_no_time_left_is_not_sent() -> None:
    add = echo_pb2_grpc.add_EchoServiceServicer_to_server
    b = Hop()
    async with loopback_grpc_endpoint((add, b)) as be, client_of(be, SERVICE_B, "2s") as to_b:
        a = Hop(to_b)
        async with (
            loopback_grpc_endpoint((add, a)) as ae,
            grpc.aio.insecure_channel(ae.removeprefix("grpc://")) as channel,
        ):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await echo_pb2_grpc.EchoServiceStub(channel).Echo(
                    echo_pb2.EchoRequest(text="d"), timeout=1.0
                )
    # A's call to B would have needed more than the 1s its caller gave: never sent.
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert SERVICE_B in (raised.value.details() or "")
    assert (a.calls, b.calls) == (1, 0)


async def test_a_call_made_while_serving_http_gets_the_rest_of_its_timeout(
    start_http: Any,
) -> None:
    add = echo_pb2_grpc.add_EchoServiceServicer_to_server
    last = Hop()
    async with (
        loopback_grpc_endpoint((add, last)) as endpoint,
        client_of(endpoint, SERVICE_B, "100ms") as to_last,
    ):
        router = APIRouter()

        @router.get("/relay")
        async def relay() -> dict[str, str]:
            answer = await to_last.Echo(echo_pb2.EchoRequest(text="d"))
            return {"seen": answer.text}

        server = await start_http(router, timeout="1s")
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(f"http://127.0.0.1:{server.port}/relay")
    assert response.status_code == 200
    # server.http.timeout (1s) from the request's start, less the margin; not the 5s.
    assert 0 < float(response.json()["seen"]) < 1.0 - 0.1
