"""A base for servicers of echo.v1, the test-only contract of the framework's own tests
(proto/api/echo/v1/echo.proto), so that they borrow no service's contract."""

from __future__ import annotations

from typing import Any

import grpc

from api.echo.v1 import echo_pb2, echo_pb2_grpc

ECHO_SERVICE = "echo.v1.EchoService"


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
