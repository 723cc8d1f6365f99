"""A call cancelled by its caller is cancelled on the server too, through micro's client
interceptors (grpc.aio cancels the interceptor's task, not the call it holds)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.testing.echo import EchoServicer
from micro.transport.client_interceptors import client_interceptors

LIMIT_S = 10.0  # a bound on each wait, never reached when it works


class Waiting(EchoServicer):
    """Echo waits for ever; tells when a call arrived and when it was cancelled."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.EchoResponse:
        self.arrived.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return echo_pb2.EchoResponse()


async def test_cancelling_the_caller_cancels_the_call_on_the_server() -> None:
    servicer = Waiting()
    server = grpc.aio.server()
    echo_pb2_grpc.add_EchoServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{port}", interceptors=client_interceptors("go-micro.echo")
    )
    try:
        stub = echo_pb2_grpc.EchoServiceStub(channel)
        caller = asyncio.ensure_future(stub.Echo(echo_pb2.EchoRequest(), timeout=60))
        await asyncio.wait_for(servicer.arrived.wait(), LIMIT_S)
        caller.cancel()
        await asyncio.gather(caller, return_exceptions=True)
        # Long before the call's own 60 s deadline:
        await asyncio.wait_for(servicer.cancelled.wait(), LIMIT_S)
        assert caller.cancelled()
        assert servicer.cancelled.is_set()
    finally:
        await channel.close(grace=None)
        await server.stop(0)
