"""The gRPC server over loopback: health, reflection, the error table, recovery,
deadlines, message size limits."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.errors import HTTP_STATUS_BY_CODE, ServiceError
from micro.health import Health
from micro.transport.grpc import GrpcServer

ECHO = "echo.v1.EchoService"
OpenChannel = Callable[[GrpcServer], grpc.aio.Channel]


async def check(channel: grpc.aio.Channel, service: str) -> int:
    response = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service)
    )
    return int(response.status)


async def test_health_reports_each_service_and_overall_through_start_and_shutdown(
    start_grpc: Any, grpc_channel_to: OpenChannel
) -> None:
    health = Health()
    server = await start_grpc(health=health, serving=False)
    channel = grpc_channel_to(server)
    for service in ("", ECHO):
        assert await check(channel, service) == health_pb2.HealthCheckResponse.NOT_SERVING
    await health.set_serving()
    for service in ("", ECHO):
        assert await check(channel, service) == health_pb2.HealthCheckResponse.SERVING
    await health.set_not_serving()
    for service in ("", ECHO):
        assert await check(channel, service) == health_pb2.HealthCheckResponse.NOT_SERVING
    await health.set_serving()  # shutdown is final
    assert await check(channel, "") == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await check(channel, "no.such.Service")
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND


async def test_health_watch_sees_not_serving_when_shutdown_begins(
    start_grpc: Any, grpc_channel_to: OpenChannel
) -> None:
    health = Health()
    server = await start_grpc(health=health)
    stub = health_pb2_grpc.HealthStub(grpc_channel_to(server))
    watch = stub.Watch(health_pb2.HealthCheckRequest(service=ECHO))
    first = await watch.read()
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    await health.set_not_serving()
    second = await watch.read()
    assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()


async def test_reflection_lists_the_services(start_grpc: Any, grpc_channel_to: OpenChannel) -> None:
    server = await start_grpc()
    stub = reflection_pb2_grpc.ServerReflectionStub(grpc_channel_to(server))
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    names: set[str] = set()
    async for response in stub.ServerReflectionInfo(iter([request])):
        names |= {s.name for s in response.list_services_response.service}
    assert {ECHO, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names

    by_symbol = reflection_pb2.ServerReflectionRequest(file_containing_symbol=ECHO)
    async for response in stub.ServerReflectionInfo(iter([by_symbol])):
        assert response.file_descriptor_response.file_descriptor_proto, (
            "no descriptor for EchoService"
        )


CODES = sorted(HTTP_STATUS_BY_CODE, key=lambda c: str(c.name))


@pytest.mark.parametrize("code", CODES)
async def test_service_error_keeps_its_code_message_and_field(
    code: grpc.StatusCode, start_grpc: Any, grpc_channel_to: OpenChannel
) -> None:
    server = await start_grpc()
    stub = echo_pb2_grpc.EchoServiceStub(grpc_channel_to(server))
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.Echo(echo_pb2.EchoRequest(text=f"code:{code.name}"))
    assert failure.value.code() is code
    assert failure.value.details() == f"text: scripted {code.name}"
    again = ServiceError.from_rpc_error(failure.value)
    assert (again.code, again.field) == (code, "text")


async def test_unexpected_exception_is_internal_without_traceback(
    start_grpc: Any, grpc_channel_to: OpenChannel, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_grpc()
    stub = echo_pb2_grpc.EchoServiceStub(grpc_channel_to(server))
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.Echo(echo_pb2.EchoRequest(text="boom"))
    assert failure.value.code() is grpc.StatusCode.INTERNAL
    assert failure.value.details() == "internal error"
    assert "secret-internal-detail" not in str(failure.value.debug_error_string())
    # ...but the service's own log has the traceback.
    assert any(
        r.exc_info and "secret-internal-detail" in str(r.exc_info[1]) for r in caplog.records
    )


async def test_configured_timeout_cuts_a_slow_call(
    start_grpc: Any, grpc_channel_to: OpenChannel
) -> None:
    server = await start_grpc(deadline=timedelta(milliseconds=100))
    stub = echo_pb2_grpc.EchoServiceStub(grpc_channel_to(server))
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.Echo(echo_pb2.EchoRequest(text="sleep:5"))
    assert failure.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    answer = await stub.Echo(echo_pb2.EchoRequest(text="sleep:0"))
    assert answer.text == "sleep:0"


async def test_message_size_limit(start_grpc: Any, grpc_channel_to: OpenChannel) -> None:
    server = await start_grpc(max_message_bytes=1024)
    stub = echo_pb2_grpc.EchoServiceStub(grpc_channel_to(server))
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.Echo(echo_pb2.EchoRequest(text="x" * 4096))
    assert failure.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (await stub.Echo(echo_pb2.EchoRequest(text="small"))).text == "small"


async def test_a_request_that_does_not_decode_is_invalid_argument(
    start_grpc: Any, grpc_channel_to: OpenChannel, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_grpc()
    raw_get = grpc_channel_to(server).unary_unary("/echo.v1.EchoService/Echo", None, None)
    caplog.set_level(logging.INFO)

    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await raw_get(b"\x0a\x05ab")  # field 1 says 5 bytes follow; 2 do

    assert failure.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "request: not a valid message" in str(failure.value.details())
    assert "echo.v1.EchoRequest" in str(failure.value.details())
    access = [
        r for r in caplog.records if r.getMessage().endswith("EchoService/Echo INVALID_ARGUMENT")
    ]
    assert [r.levelno for r in access] == [logging.INFO]
    assert not [r for r in caplog.records if r.levelno > logging.WARNING or r.exc_info]


async def test_port_zero_reports_the_bound_port(start_grpc: Any) -> None:
    first = await start_grpc()
    second = await start_grpc()
    assert first.port > 0
    assert second.port > 0
    assert first.port != second.port
    with pytest.raises(RuntimeError):
        first.add_service(echo_pb2_grpc.add_EchoServiceServicer_to_server, object())
