"""Drain without a lost keep-alive request: from the start of shutdown the HTTP server
answers with `Connection: close`, in flight and on open connections, and the gRPC server
lets the call in flight finish while new calls are told to go elsewhere."""

from __future__ import annotations

import asyncio

import grpc
import httpx
import pytest

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.config.model import GrpcServerConfig, HttpServerConfig
from micro.health import Health
from micro.testing.waiting import eventually
from micro.transport.grpc import GrpcServer
from micro.transport.http import HttpServer

from .conftest import HELD_S, Gate, GatedEcho, held_router


async def test_keep_alive_requests_during_drain_get_connection_close_and_none_fails(
    gate: Gate,
) -> None:
    health = Health()
    server = HttpServer(HttpServerConfig(addr="127.0.0.1:0", timeout=HELD_S), health=health)
    server.include_router(held_router(gate))
    await server.start()
    await health.set_serving()
    stopping: asyncio.Task[None] | None = None
    try:
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=base, limits=one, timeout=10) as http:
            before = await http.get("/quick")
            assert before.status_code == 200
            assert before.headers.get("connection") != "close"
            held = asyncio.ensure_future(http.get("/hold"))
            await eventually(lambda: gate.entered == 1, "the request in the handler")

            await health.set_not_serving()  # the app's shutdown begins: drain
            gate.opened.set()
            in_flight = await held
            assert in_flight.status_code == 200
            assert in_flight.headers["connection"] == "close"
            # The client opens a new connection for the next request, and is told too.
            during = [await http.get("/quick") for _ in range(3)]
            assert [r.status_code for r in during] == [200, 200, 200]
            assert {r.headers["connection"] for r in during} == {"close"}
            probe = await http.get("/readyz")
            assert (probe.status_code, probe.headers["connection"]) == (503, "close")

            stopping = asyncio.ensure_future(server.stop(5))
            await stopping
    finally:
        gate.opened.set()
        if stopping is None:
            await server.stop(0)


async def test_grpc_stop_finishes_the_call_in_flight_and_turns_new_calls_away(
    gate: Gate,
) -> None:
    """grpc.aio's stop(grace) sends GOAWAY: the open channel's next call is turned away
    at once without reaching a handler, the one in flight completes."""
    health = Health()
    server = GrpcServer(GrpcServerConfig(addr="127.0.0.1:0", timeout=HELD_S), health=health)
    server.add_service(echo_pb2_grpc.add_EchoServiceServicer_to_server, GatedEcho(gate))
    await server.start()
    await health.set_serving()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    stopping: asyncio.Task[None] | None = None
    try:
        echo = echo_pb2_grpc.EchoServiceStub(channel)
        held = asyncio.ensure_future(echo.Echo(echo_pb2.EchoRequest(text="hold"), timeout=10))
        await eventually(lambda: gate.entered == 1, "the call in the handler")
        stopping = asyncio.ensure_future(server.stop(10))
        await asyncio.sleep(0)  # one turn: grpc.aio starts its shutdown before any await
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await echo.Echo(echo_pb2.EchoRequest(text="new"), timeout=10)
        # UNAVAILABLE once the client has the GOAWAY; a stream that crossed it on the
        # wire is CANCELLED by the stopping server. Either way no handler ran it.
        assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
        assert gate.entered == 1
        gate.opened.set()
        assert (await held).text == "hold"
        await stopping
    finally:
        gate.opened.set()
        await channel.close(None)
        if stopping is None:
            await server.stop(0)
