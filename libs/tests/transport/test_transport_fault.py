"""Fault injection (the `fault` section) on a real loopback gRPC server, and its choice
of calls with a scripted chance."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.config.model import FaultConfig, GrpcServerConfig
from micro.health import Health
from micro.testing.echo import EchoServicer
from micro.transport.fault import FaultInjector
from micro.transport.grpc import GrpcServer

ECHO = "/echo.v1.EchoService/Echo"


class Echo(EchoServicer):
    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.EchoResponse:
        return echo_pb2.EchoResponse(text=request.text)


def draws(*values: float) -> Any:
    it = iter(values)
    return lambda: next(it)


def test_off_unless_configured() -> None:
    faults = FaultInjector()
    assert not faults.active
    assert not faults.applies(ECHO)


def test_the_share_of_failures_follows_the_draws() -> None:
    faults = FaultInjector(FaultConfig(unavailable_share=0.5), chance=draws(0.1, 0.7, 0.49, 0.5))
    assert [faults.fails() for _ in range(4)] == [True, False, True, False]


def test_methods_narrow_it_and_health_checks_are_never_touched() -> None:
    faults = FaultInjector(FaultConfig(unavailable_share=1.0, methods=("a.v1.Svc/Get",)))
    assert faults.applies("/a.v1.Svc/Get")
    assert not faults.applies("/a.v1.Svc/Put")
    faults.update(FaultConfig(unavailable_share=1.0, methods=("a.v1.Svc/*",)))
    assert faults.applies("/a.v1.Svc/Put")
    assert not faults.applies("/b.v1.Other/Put")
    faults.update(FaultConfig(unavailable_share=1.0))
    assert faults.applies("/b.v1.Other/Put")
    assert not faults.applies("/grpc.health.v1.Health/Check")


def test_a_method_that_is_no_pattern_is_refused() -> None:
    with pytest.raises(ValueError, match=r"method 'Echo' is not pkg\.Service/Method"):
        FaultConfig(methods=("Echo",))


def test_turning_it_on_and_off_logs_a_warning_each_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    faults = FaultInjector()
    with caplog.at_level(logging.WARNING, logger="micro.fault"):
        faults.update(FaultConfig(delay=timedelta(milliseconds=200)))
        faults.update(FaultConfig(delay=timedelta(milliseconds=300)))  # still on: no line
        faults.update(FaultConfig())
    messages = [r.getMessage() for r in caplog.records if r.name == "micro.fault"]
    assert messages == [
        "fault injection ON: delay 0.200s, 0% of calls UNAVAILABLE, methods: all",
        "fault injection off",
    ]


async def test_a_server_answers_unavailable_then_slow_then_normally_as_configured(
    started_servers: Any, grpc_channel_to: Any
) -> None:
    health = Health()
    server = GrpcServer(
        GrpcServerConfig(addr="127.0.0.1:0", timeout=timedelta(milliseconds=200)),
        health=health,
        fault=FaultConfig(unavailable_share=1.0),
    )
    server.add_service(echo_pb2_grpc.add_EchoServiceServicer_to_server, Echo())
    await started_servers.start(server, health, serving=True, stop_grace_s=0)
    channel = grpc_channel_to(server)
    echo = echo_pb2_grpc.EchoServiceStub(channel)

    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await echo.Echo(echo_pb2.EchoRequest(text="x"), timeout=10)
    assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "fault injected" in (failed.value.details() or "")
    probe = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=10
    )
    assert probe.status == health_pb2.HealthCheckResponse.SERVING

    # A delay past the server's own timeout: the deadline still cuts the call.
    server.fault.update(FaultConfig(delay=timedelta(seconds=30)))
    with pytest.raises(grpc.aio.AioRpcError) as slow:
        await echo.Echo(echo_pb2.EchoRequest(text="x"), timeout=10)
    assert slow.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED

    server.fault.update(FaultConfig())
    assert (await echo.Echo(echo_pb2.EchoRequest(text="x"), timeout=10)).text == "x"


def test_pods_narrow_it_to_the_named_replicas() -> None:
    drill = FaultConfig(unavailable_share=1.0, pods=("device-srv-b",))
    assert not FaultInjector(drill, pod="device-srv-a").applies(ECHO)
    assert FaultInjector(drill, pod="device-srv-b").applies(ECHO)
    assert FaultInjector(FaultConfig(unavailable_share=1.0), pod="device-srv-a").applies(ECHO)
