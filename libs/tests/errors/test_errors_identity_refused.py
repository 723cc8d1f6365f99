"""A service whose own identity a dependency refuses answers UNAVAILABLE (503), never the
dependency's UNAUTHENTICATED or PERMISSION_DENIED: its end user's credentials are not at
fault. Through real servers: the refusing callee, a gRPC hop and an HTTP gateway."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import pytest
from fastapi import APIRouter

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.errors import (
    IDENTITY_REFUSED_MESSAGE,
    CallerIdentityRefused,
    ServiceError,
    unauthenticated,
)
from micro.identity.refusals import IdentityRefusal
from micro.testing.echo import RaisingEcho
from micro.transport.grpc import GrpcServer

REFUSALS: dict[str, ServiceError] = {
    "denied": IdentityRefusal("denied", "sa:x may not call /echo.v1.EchoService/Echo").error(),
    "missing": IdentityRefusal("missing", "missing x-micro-identity metadata").error(),
    # The end user's own bad token, passed on as it is.
    "user": unauthenticated(None, "access token: expired"),
}


def gateway_router(downstream_port: int) -> APIRouter:
    router = APIRouter()

    @router.get("/call/{name}")
    async def call(name: str) -> dict[str, Any]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{downstream_port}") as channel:
            await echo_pb2_grpc.EchoServiceStub(channel).Echo(echo_pb2.EchoRequest(text=name))
        return {}

    return router


async def _code(channel: grpc.aio.Channel, name: str) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await echo_pb2_grpc.EchoServiceStub(channel).Echo(echo_pb2.EchoRequest(text=name))
    code: grpc.StatusCode = failure.value.code()
    return code


def test_identity_refusals_are_marked() -> None:
    assert all(isinstance(REFUSALS[name], CallerIdentityRefused) for name in ("denied", "missing"))


@pytest.mark.parametrize(
    ("name", "callee_code", "relayed_code", "http_status"),
    [
        ("denied", grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAVAILABLE, 503),
        ("missing", grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAVAILABLE, 503),
        ("user", grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAUTHENTICATED, 401),
    ],
)
async def test_a_refused_identity_is_unavailable_one_hop_up(
    name: str,
    callee_code: grpc.StatusCode,
    relayed_code: grpc.StatusCode,
    http_status: int,
    start_grpc: Any,
    start_http: Any,
    grpc_channel_to: Any,
) -> None:
    callee: GrpcServer = await start_grpc(RaisingEcho(REFUSALS))
    middle: GrpcServer = await start_grpc(RaisingEcho(REFUSALS, grpc_channel_to(callee)))
    assert await _code(grpc_channel_to(callee), name) is callee_code
    assert await _code(grpc_channel_to(middle), name) is relayed_code
    gateway = await start_http(gateway_router(callee.port))
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(f"http://127.0.0.1:{gateway.port}/call/{name}")
    assert answer.status_code == http_status, answer.text
    if http_status == 503:
        # Nothing of the internal refusal (accounts, methods) reaches the end user.
        assert answer.json()["message"] == IDENTITY_REFUSED_MESSAGE
