"""RESOURCE_EXHAUSTED by cause through real servers: 413 for a size, 429 for a rate, 503
for shed load; Retry-After over HTTP and grpc-retry-pushback-ms over gRPC only when a
retry is permitted; and the cause and wait survive a downstream hop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import grpc
import httpx
import pytest
from fastapi import APIRouter

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.errors import (
    PUSHBACK_KEY,
    RETRY_AFTER_KEY,
    Exhausted,
    ServiceError,
    overloaded,
    rate_limited,
    too_large,
)
from micro.testing.echo import RaisingEcho
from micro.transport.grpc import GrpcServer

OpenChannel = Callable[[GrpcServer], grpc.aio.Channel]

ERRORS: dict[str, ServiceError] = {
    "size": too_large("request body is larger than 256 bytes"),
    "rate": rate_limited("too many failed logins", timedelta(seconds=3)),
    "load": overloaded("shedding load", timedelta(milliseconds=1500)),
    "load-no-wait": overloaded("shedding load"),
}
# (error name, cause, HTTP status, Retry-After, pushback ms)
CASES = [
    ("size", Exhausted.SIZE, 413, None, None),
    ("rate", Exhausted.RATE, 429, "3", "3000"),
    ("load", Exhausted.LOAD, 503, "2", "1500"),
    ("load-no-wait", Exhausted.LOAD, 503, None, None),
]


def exhausting_router(downstream_port: int | None = None) -> APIRouter:
    router = APIRouter()

    @router.get("/exhaust/{name}")
    async def exhaust(name: str) -> dict[str, Any]:
        if downstream_port is None:
            raise ERRORS[name]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{downstream_port}") as channel:
            await echo_pb2_grpc.EchoServiceStub(channel).Echo(echo_pb2.EchoRequest(text=name))
        return {}

    return router


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


async def _fail(channel: grpc.aio.Channel, name: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await echo_pb2_grpc.EchoServiceStub(channel).Echo(echo_pb2.EchoRequest(text=name))
    return failure.value


@pytest.mark.parametrize(("name", "cause", "status", "retry_after", "pushback"), CASES)
async def test_each_cause_over_http(
    name: str,
    cause: Exhausted,
    status: int,
    retry_after: str | None,
    pushback: str | None,
    start_http: Any,
    client: httpx.AsyncClient,
) -> None:
    server = await start_http(exhausting_router())
    answer = await client.get(f"http://127.0.0.1:{server.port}/exhaust/{name}")
    assert answer.status_code == status
    assert answer.json()["code"] == "RESOURCE_EXHAUSTED"
    assert answer.headers.get("retry-after") == retry_after


@pytest.mark.parametrize(("name", "cause", "status", "retry_after", "pushback"), CASES)
async def test_each_cause_over_grpc_with_pushback_only_when_retry_is_permitted(
    name: str,
    cause: Exhausted,
    status: int,
    retry_after: str | None,
    pushback: str | None,
    start_grpc: Any,
    grpc_channel_to: OpenChannel,
) -> None:
    server = await start_grpc(RaisingEcho(ERRORS))
    failure = await _fail(grpc_channel_to(server), name)
    assert failure.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    # grpc.aio answers (key, value) tuples, whatever the stubs say.
    sent: Any = failure.trailing_metadata() or ()
    trailers = dict(sent)
    assert trailers.get(PUSHBACK_KEY) == pushback
    assert trailers.get(RETRY_AFTER_KEY) == retry_after
    received = ServiceError.from_rpc_error(failure)
    assert (received.cause, received.http_status) == (cause, status)


@pytest.mark.parametrize(("name", "cause", "status", "retry_after", "pushback"), CASES)
async def test_a_downstream_cause_and_wait_survive_a_grpc_and_an_http_hop(
    name: str,
    cause: Exhausted,
    status: int,
    retry_after: str | None,
    pushback: str | None,
    start_grpc: Any,
    start_http: Any,
    grpc_channel_to: OpenChannel,
    client: httpx.AsyncClient,
) -> None:
    downstream = await start_grpc(RaisingEcho(ERRORS))
    middle = await start_grpc(RaisingEcho(ERRORS, grpc_channel_to(downstream)))
    relayed = ServiceError.from_rpc_error(await _fail(grpc_channel_to(middle), name))
    assert (relayed.cause, relayed.retry_after_seconds) == (cause, ERRORS[name].retry_after_seconds)
    gateway = await start_http(exhausting_router(middle.port))
    answer = await client.get(f"http://127.0.0.1:{gateway.port}/exhaust/{name}")
    assert answer.status_code == status
    assert answer.headers.get("retry-after") == retry_after


async def test_a_peer_that_sends_only_retry_after_or_no_cause_is_still_read() -> None:
    older = grpc.aio.AioRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.aio.Metadata(),
        grpc.aio.Metadata((RETRY_AFTER_KEY, "4")),
        "slow down",
        None,
    )
    received = ServiceError.from_rpc_error(older)
    assert (received.cause, received.retry_after_seconds, received.http_status) == (None, 4, 429)


def test_a_malformed_pushback_forbids_the_retry_even_with_retry_after() -> None:
    refused = grpc.aio.AioRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.aio.Metadata(),
        grpc.aio.Metadata((PUSHBACK_KEY, "-1"), (RETRY_AFTER_KEY, "4")),
        "slow down",
        None,
    )
    assert ServiceError.from_rpc_error(refused).retry_after is None


def test_only_resource_exhausted_carries_a_cause() -> None:
    with pytest.raises(ValueError, match="RESOURCE_EXHAUSTED"):
        ServiceError(grpc.StatusCode.UNAVAILABLE, "down", cause=Exhausted.LOAD)
