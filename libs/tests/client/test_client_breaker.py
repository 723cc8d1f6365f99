"""The client's adaptive breaker per (dependency, method): SRE client-side throttling,
unit tests on an injected clock and a scripted random source, then over a real server."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.client import ClientFactory
from micro.client.breaker import AdaptiveThrottle
from micro.config.model import BreakerConfig, GrpcClientConfig, StaticService
from micro.registry import StaticDiscovery
from micro.testing.echo import EchoServicer
from micro.testing.grpc_loopback import loopback_grpc_endpoint

SERVICE = "go-micro.echo"
StartReplica = Callable[[str], Awaitable[tuple[Any, int]]]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, rand: float = 0.0, **config: Any) -> AdaptiveThrottle:
    cfg = BreakerConfig.model_validate({"window": "10s", "min_requests": 10, **config})
    return AdaptiveThrottle(SERVICE, "Echo", lambda: cfg, clock=clock, rand=lambda: rand)


def test_failures_below_min_requests_are_never_shed() -> None:
    breaker = throttle(Clock())
    for _ in range(9):
        assert breaker.allow()
        breaker.record(accepted=False)
    assert breaker.probability() == 0.0
    assert breaker.allow()


def test_the_shed_share_follows_requests_and_accepts() -> None:
    breaker = throttle(Clock())
    for accepted in [True] * 4 + [False] * 16:
        breaker.record(accepted=accepted)
    # (requests - k x accepts) / (requests + 1) with k = 2
    assert breaker.probability() == pytest.approx((20 - 2 * 4) / 21)
    assert not breaker.allow()  # rand 0.0 falls under any share above 0
    assert breaker.rejecting


def test_half_the_calls_failing_sheds_nothing_with_k_2() -> None:
    breaker = throttle(Clock())
    for n in range(40):
        assert breaker.allow()
        breaker.record(accepted=n % 2 == 0)
    assert breaker.probability() == 0.0


def test_a_draw_above_the_share_still_sends() -> None:
    breaker = throttle(Clock(), rand=0.99)
    for _ in range(20):
        breaker.allow()
        breaker.record(accepted=False)
    assert 0 < breaker.probability() < 0.99
    assert breaker.allow()  # the calls that still go through tell when it is back


def test_the_window_slides_so_old_failures_are_forgotten() -> None:
    clock = Clock()
    breaker = throttle(clock)
    for _ in range(20):
        breaker.allow()
        breaker.record(accepted=False)
    assert breaker.probability() > 0
    clock.now += 5.0
    assert breaker.probability() > 0  # half a window on: still counted
    clock.now += 6.0
    assert breaker.probability() == 0.0
    assert breaker.allow()
    assert not breaker.rejecting


def test_a_disabled_breaker_sends_everything() -> None:
    breaker = throttle(Clock(), enabled=False)
    for _ in range(50):
        breaker.record(accepted=False)
    assert breaker.allow()
    assert breaker.probability() == 0.0


def test_one_log_line_when_shedding_starts_and_one_when_it_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    breaker = throttle(clock)
    with caplog.at_level(logging.INFO, logger="micro.client"):
        for _ in range(30):
            breaker.allow()
            breaker.record(accepted=False)
        clock.now += 11.0
        for _ in range(5):
            breaker.allow()
    lines = [r.getMessage() for r in caplog.records if "breaker" in r.getMessage()]
    assert len(lines) == 2, lines
    assert "starts shedding" in lines[0]
    assert SERVICE in lines[0]
    assert "stops shedding" in lines[1]


async def test_a_failing_dependency_is_refused_locally_naming_it(
    start_replica: StartReplica,
) -> None:
    replica, port = await start_replica("127.0.0.41")
    replica.fail_with = grpc.StatusCode.UNAVAILABLE
    cfg = GrpcClientConfig.model_validate(
        {"max_attempts": 1, "breaker": {"min_requests": 5, "window": "1m"}}
    )
    discovery = StaticDiscovery(
        [StaticService(name=SERVICE, endpoints=(f"grpc://127.0.0.41:{port}",))]
    )
    factory = ClientFactory(discovery, cfg)
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    labels = {"service": SERVICE, "method": "Echo"}
    refused_before = REGISTRY.get_sample_value("micro_client_breaker_rejections_total", labels)
    codes: list[str] = []
    try:
        for _ in range(40):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Echo(echo_pb2.EchoRequest(text="d"))
            codes.append(raised.value.details() or "")
    finally:
        await factory.close()
    shed = [d for d in codes if "breaker" in d]
    assert shed, codes
    assert all(d.startswith(f"{SERVICE}: ") for d in shed)
    assert replica.calls == 40 - len(shed)  # a refused call never reached the server
    assert replica.calls < 20  # by then most calls were refused
    refused = REGISTRY.get_sample_value("micro_client_breaker_rejections_total", labels)
    assert (refused or 0) - (refused_before or 0) == len(shed)
    shed_share = REGISTRY.get_sample_value("micro_client_breaker_shed_probability", labels)
    assert (shed_share or 0) > 0.5


class EveryOtherFails(EchoServicer):
    """Echo answers UNAVAILABLE to every other call: each call's retry succeeds."""

    def __init__(self) -> None:
        self.calls = 0

    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.EchoResponse:
        self.calls += 1
        if self.calls % 2:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "every other call fails")
        return echo_pb2.EchoResponse(text="ok")


async def test_calls_their_retries_save_are_accepted() -> None:
    servicer = EveryOtherFails()
    cfg = GrpcClientConfig.model_validate(
        {
            "breaker": {"min_requests": 5, "window": "1m"},
            "retry_budget": {"ratio": 1.0, "backoff": "1ms"},
        }
    )
    add = echo_pb2_grpc.add_EchoServiceServicer_to_server
    async with loopback_grpc_endpoint((add, servicer)) as endpoint:
        factory = ClientFactory(
            StaticDiscovery([StaticService(name=SERVICE, endpoints=(endpoint,))]), cfg
        )
        stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
        try:
            answers = [await stub.Echo(echo_pb2.EchoRequest(text="d")) for _ in range(40)]
        finally:
            await factory.close()
    assert [a.text for a in answers] == ["ok"] * 40
    assert servicer.calls == 80  # half the attempts failed, yet no call was refused
    assert not factory.guards(SERVICE).breaker("Echo").rejecting


def test_after_an_outage_the_first_answers_clear_it_within_a_window() -> None:
    clock = Clock()
    cfg = BreakerConfig.model_validate({"window": "5s", "k": 2.0, "min_requests": 20})
    draws = random.Random(7)  # noqa: S311  (seeded: the same draws every run)
    breaker = AdaptiveThrottle(SERVICE, "Echo", lambda: cfg, clock=clock, rand=draws.random)
    start, sent_while_down, cleared_after = clock.now, 0, None
    for n in range(3000):  # 100 calls a second: 10 s calm, 10 s down, then back
        clock.now = start + n / 100
        down = 10 <= n / 100 < 20
        if breaker.allow():
            breaker.record(accepted=not down)
            sent_while_down += down
        if n / 100 >= 20 and cleared_after is None and breaker.probability() == 0:
            cleared_after = n / 100 - 20
    assert sent_while_down < 500  # most of the outage's 1000 calls never left
    assert cleared_after is not None
    assert cleared_after < 5.0  # within a window of the first answers
    assert not breaker.rejecting  # and its stop was logged once settled
