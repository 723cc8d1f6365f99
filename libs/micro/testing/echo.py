"""A base for servicers of echo.v1, the test-only contract of the framework's own tests
(proto/api/echo/v1/echo.proto), so that they borrow no service's contract."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import grpc

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.errors import ServiceError


class EchoServicer(echo_pb2_grpc.EchoServiceServicer):
    """Every method answers UNIMPLEMENTED; a test's servicer overrides those it serves
    (the generated base declares them abstract)."""

    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.EchoResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Echo is not served here")

    async def Put(
        self, request: echo_pb2.PutRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.PutResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Put is not served here")

    async def Append(
        self, request: echo_pb2.AppendRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.AppendResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Append is not served here")

    async def AppendOnce(
        self, request: echo_pb2.AppendOnceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.AppendOnceResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "AppendOnce is not served here")


class RaisingEcho(EchoServicer):
    """Echo raises errors[text]; with a downstream channel it passes the call on there
    instead, so a test sees how one hop relays a downstream's failure."""

    def __init__(
        self, errors: Mapping[str, Exception], downstream: grpc.aio.Channel | None = None
    ) -> None:
        self._errors = errors
        self._downstream = downstream

    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.EchoResponse:
        if self._downstream is not None:
            return await echo_pb2_grpc.EchoServiceStub(self._downstream).Echo(request)
        raise self._errors[request.text]


async def act_out(value: str, field: str) -> None:
    """What a scripted test handler does for `value`, over either transport:
    "code:NOT_FOUND" raises ServiceError(NOT_FOUND, field=field); "boom" raises a plain
    exception (whose text must never reach a client); "sleep:0.3" waits that long."""
    if value.startswith("code:"):
        code = grpc.StatusCode[value.removeprefix("code:")]
        raise ServiceError(code, f"{field}: scripted {code.name}", field=field)
    if value == "boom":
        raise RuntimeError("secret-internal-detail")
    if value.startswith("sleep:"):
        await asyncio.sleep(float(value.removeprefix("sleep:")))
