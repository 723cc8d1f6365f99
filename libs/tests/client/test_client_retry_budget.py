"""Retries: bounded by a token bucket per dependency, spaced by jittered backoff, and on
RESOURCE_EXHAUSTED only when the server sent pushback. Unit tests on an injected clock,
then over real servers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.client import ClientFactory
from micro.client.budget import RetryBudget
from micro.client.retry import REFUSED, backoff_s, pushback_s, retry_delay_s
from micro.config.model import GrpcClientConfig, RetryBudgetConfig, StaticService
from micro.errors import PUSHBACK_KEY, overloaded, rate_limited, too_large
from micro.registry import StaticDiscovery
from micro.testing.echo import EchoServicer

SERVICE = "go-micro.echo"


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def budget(clock: Clock, **config: Any) -> RetryBudget:
    cfg = RetryBudgetConfig.model_validate(config)
    return RetryBudget(SERVICE, lambda: cfg, clock=clock)


def test_a_full_bucket_allows_burst_retries_then_none() -> None:
    retries = budget(Clock(), burst=3, min_per_second=0, ratio=0)
    assert [retries.try_spend() for _ in range(5)] == [True, True, True, False, False]


def test_calls_sent_earn_their_ratio_of_a_retry() -> None:
    retries = budget(Clock(), burst=10, min_per_second=0, ratio=0.25)
    while retries.try_spend():
        pass
    for _ in range(10):
        retries.sent()
    assert [retries.try_spend() for _ in range(3)] == [True, True, False]


def test_the_floor_refills_with_time_up_to_the_burst() -> None:
    clock = Clock()
    retries = budget(clock, burst=4, min_per_second=2, ratio=0)
    while retries.try_spend():
        pass
    clock.now += 1.0
    assert retries.left == pytest.approx(2.0)
    clock.now += 60.0
    assert retries.left == pytest.approx(4.0)


def test_one_log_line_when_dry_and_one_when_it_recovers(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    retries = budget(clock, burst=1, min_per_second=1, ratio=0)
    with caplog.at_level(logging.INFO, logger="micro.client"):
        retries.try_spend()
        for _ in range(5):
            retries.try_spend()
        clock.now += 2.0
        retries.try_spend()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "ran dry" in lines[0]
    assert SERVICE in lines[0]
    assert "recovered" in lines[1]


def test_a_disabled_budget_never_refuses() -> None:
    retries = budget(Clock(), burst=1, min_per_second=0, enabled=False)
    assert all(retries.try_spend() for _ in range(10))


def test_backoff_grows_with_full_jitter_and_is_capped() -> None:
    cfg = RetryBudgetConfig.model_validate({"backoff": "10ms", "max_backoff": "50ms"})
    assert [backoff_s(n, cfg, rand=lambda: 1.0) for n in (1, 2, 3, 4)] == pytest.approx(
        [0.01, 0.02, 0.04, 0.05]
    )
    assert backoff_s(3, cfg, rand=lambda: 0.5) == pytest.approx(0.02)


def error(code: grpc.StatusCode, pushback: str | None = None) -> grpc.aio.AioRpcError:
    trailers = grpc.aio.Metadata(*([(PUSHBACK_KEY, pushback)] if pushback is not None else []))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, "scripted", None)


def test_pushback_is_read_and_a_negative_or_bad_one_refuses() -> None:
    assert pushback_s(error(grpc.StatusCode.UNAVAILABLE)) is None
    assert pushback_s(error(grpc.StatusCode.UNAVAILABLE, "250")) == pytest.approx(0.25)
    assert pushback_s(error(grpc.StatusCode.UNAVAILABLE, "-1")) == REFUSED
    assert pushback_s(error(grpc.StatusCode.UNAVAILABLE, "soon")) == REFUSED


def test_which_failures_are_retried_and_after_how_long() -> None:
    cfg = RetryBudgetConfig.model_validate({"backoff": "10ms"})

    def delay(code: grpc.StatusCode, pushback: str | None = None) -> float | None:
        return retry_delay_s(error(code, pushback), 1, cfg, rand=lambda: 1.0)

    assert delay(grpc.StatusCode.UNAVAILABLE) == pytest.approx(0.01)
    assert delay(grpc.StatusCode.UNAVAILABLE, "30") == pytest.approx(0.03)
    assert delay(grpc.StatusCode.UNAVAILABLE, "-1") is None
    assert delay(grpc.StatusCode.RESOURCE_EXHAUSTED) is None
    assert delay(grpc.StatusCode.RESOURCE_EXHAUSTED, "20") == pytest.approx(0.02)
    assert delay(grpc.StatusCode.RESOURCE_EXHAUSTED, "-5") is None
    assert delay(grpc.StatusCode.NOT_FOUND) is None
    for limit in (
        rate_limited("locked", timedelta(milliseconds=20)),
        too_large("big"),
    ):  # a limit about the request: the same request meets it again
        refused = grpc.aio.AioRpcError(
            limit.code,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(*limit.trailing_metadata()),
            limit.message,
            None,
        )
        assert retry_delay_s(refused, 1, cfg) is None
    shed = overloaded("busy", timedelta(milliseconds=20))
    from_shedding = grpc.aio.AioRpcError(
        shed.code, grpc.aio.Metadata(), grpc.aio.Metadata(*shed.trailing_metadata()), "", None
    )
    assert retry_delay_s(from_shedding, 1, cfg) == pytest.approx(0.02)
    assert delay(grpc.StatusCode.DEADLINE_EXCEEDED) is None


class Refusing(EchoServicer):
    """Echo fails with `code` (and pushback `pushback` when given) `failures` times."""

    def __init__(self, code: grpc.StatusCode, pushback: str | None, failures: int) -> None:
        self.code, self.pushback, self.failures = code, pushback, failures
        self.calls = 0

    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.EchoResponse:
        self.calls += 1
        if self.calls <= self.failures:
            if self.pushback is not None:
                context.set_trailing_metadata(((PUSHBACK_KEY, self.pushback),))
            await context.abort(self.code, "scripted refusal")
        return echo_pb2.EchoResponse(text="ok")


@contextlib.asynccontextmanager
async def client_of(*servicers: Refusing, **cfg: Any) -> AsyncIterator[Any]:
    """A stub of one service whose instances are `servicers`, each on a server of its own."""
    async with contextlib.AsyncExitStack() as stack:
        endpoints = []
        for n, servicer in enumerate(servicers):
            server = grpc.aio.server()
            echo_pb2_grpc.add_EchoServiceServicer_to_server(servicer, server)
            port = server.add_insecure_port(f"127.0.0.{51 + n}:0")
            await server.start()
            stack.push_async_callback(server.stop, 0)
            endpoints.append(f"grpc://127.0.0.{51 + n}:{port}")
        discovery = StaticDiscovery([StaticService(name=SERVICE, endpoints=tuple(endpoints))])
        factory = ClientFactory(discovery, GrpcClientConfig.model_validate(cfg))
        stack.push_async_callback(factory.close)
        yield factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)


async def test_a_failure_is_retried_on_the_same_lone_instance() -> None:
    servicer = Refusing(grpc.StatusCode.UNAVAILABLE, None, failures=1)
    async with client_of(servicer) as stub:
        assert (await stub.Echo(echo_pb2.EchoRequest(text="d"))).text == "ok"
    assert servicer.calls == 2


async def test_when_every_instance_is_failing_a_failed_call_is_not_retried() -> None:
    down = [Refusing(grpc.StatusCode.UNAVAILABLE, None, failures=1000) for _ in range(2)]
    cfg: dict[str, Any] = {
        "max_attempts": 5,
        "retry_budget": {"failing_after": 2, "backoff": "1ms"},
        "breaker": {"enabled": False},
        "ejection": {"enabled": False},
    }
    async with client_of(*down, **cfg) as stub:
        attempts = []
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Echo(echo_pb2.EchoRequest(text="d"))
            attempts.append(sum(s.calls for s in down))
    # The first call tries each instance until both have failed twice in a row; later
    # calls are sent once and not retried: there is nowhere worth retrying them.
    assert attempts == [4, 5, 6]


async def test_resource_exhausted_with_pushback_is_retried() -> None:
    servicer = Refusing(grpc.StatusCode.RESOURCE_EXHAUSTED, "5", failures=1)
    async with client_of(servicer) as stub:
        assert (await stub.Echo(echo_pb2.EchoRequest(text="d"))).text == "ok"
    assert servicer.calls == 2


@pytest.mark.parametrize("pushback", [None, "-1"])
async def test_resource_exhausted_without_a_pushback_is_not_retried(pushback: str | None) -> None:
    servicer = Refusing(grpc.StatusCode.RESOURCE_EXHAUSTED, pushback, failures=1)
    async with client_of(servicer) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Echo(echo_pb2.EchoRequest(text="d"))
    assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert servicer.calls == 1


async def test_a_pushback_past_the_deadline_is_not_waited_for() -> None:
    servicer = Refusing(grpc.StatusCode.RESOURCE_EXHAUSTED, "60000", failures=1)
    async with client_of(servicer, timeout="2s") as stub:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Echo(echo_pb2.EchoRequest(text="d"))
    assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # at once, not a timeout
    assert servicer.calls == 1


async def test_an_outage_is_not_multiplied_once_the_budget_is_spent() -> None:
    servicer = Refusing(grpc.StatusCode.UNAVAILABLE, None, failures=1000)
    budget_cfg = {
        "burst": 2,
        "min_per_second": 0,
        "ratio": 0,
        "backoff": "1ms",
        "failing_after": 1000,  # the budget alone bounds the retries here
    }
    labels = {"service": SERVICE}
    denied_before = REGISTRY.get_sample_value("micro_client_retry_budget_denied_total", labels)
    async with client_of(
        servicer, max_attempts=3, retry_budget=budget_cfg, breaker={"enabled": False}
    ) as stub:
        for _ in range(10):
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Echo(echo_pb2.EchoRequest(text="d"))
    assert servicer.calls == 10 + 2  # every call once, and the two retries of the burst
    denied = REGISTRY.get_sample_value("micro_client_retry_budget_denied_total", labels)
    assert (denied or 0) - (denied_before or 0) == 9  # the first call spent the burst
    assert (REGISTRY.get_sample_value("micro_client_retry_budget_tokens", labels) or 0) < 1
