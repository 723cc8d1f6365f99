"""Load shedding on real loopback servers: a burst against a handler held busy is shed
at once with the right code and pushback, probes are never shed, and calls are admitted
again once the burst is over."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import httpx
import pytest
from fastapi import APIRouter
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.config.model import GrpcServerConfig, HttpServerConfig, SheddingConfig
from micro.errors import PUSHBACK_KEY
from micro.health import Health
from micro.testing.waiting import eventually
from micro.transport.grpc import GrpcServer
from micro.transport.http import HttpServer

from .conftest import HELD_S, Gate, GatedEcho, held_router

# Two calls in flight at most: the third is shed.
TIGHT = SheddingConfig(initial_limit=2, min_limit=2, max_limit=2)
BURST = 6


def shed_total(transport: str) -> float:
    return REGISTRY.get_sample_value("micro_server_shed_total", {"transport": transport}) or 0.0


async def test_grpc_burst_is_shed_with_pushback_and_admitted_again_after(
    started_servers: Any, grpc_channel_to: Any, gate: Gate
) -> None:
    health = Health()
    server = GrpcServer(
        GrpcServerConfig(addr="127.0.0.1:0", timeout=HELD_S), health=health, shedding=TIGHT
    )
    server.add_service(echo_pb2_grpc.add_EchoServiceServicer_to_server, GatedEcho(gate))
    await started_servers.start(server, health, serving=True, stop_grace_s=0)
    channel = grpc_channel_to(server)
    echo = echo_pb2_grpc.EchoServiceStub(channel)
    shed_before = shed_total("grpc")

    held = [asyncio.ensure_future(echo.Echo(echo_pb2.EchoRequest(text="hold"), timeout=10))]
    held.append(asyncio.ensure_future(echo.Echo(echo_pb2.EchoRequest(text="hold"), timeout=10)))
    await eventually(lambda: gate.entered == 2, "two calls in the handler")
    for _ in range(BURST):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await echo.Echo(echo_pb2.EchoRequest(text="x"), timeout=10)
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "overloaded" in (refused.value.details() or "")
        sent: Any = refused.value.trailing_metadata() or ()
        trailers = dict(sent)
        assert int(trailers[PUSHBACK_KEY]) >= 1
    assert gate.entered == 2  # no shed call reached the handler
    assert shed_total("grpc") - shed_before == BURST
    probe = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=10
    )
    assert probe.status == health_pb2.HealthCheckResponse.SERVING

    gate.opened.set()
    assert [r.text for r in await asyncio.gather(*held)] == ["hold", "hold"]
    answers = await asyncio.gather(
        *(echo.Echo(echo_pb2.EchoRequest(text=f"after-{i}"), timeout=10) for i in range(2))
    )
    assert [a.text for a in answers] == ["after-0", "after-1"]
    assert server.shedding.in_flight == 0


async def start_http(
    started_servers: Any, health: Health, router: APIRouter, shedding: SheddingConfig
) -> HttpServer:
    server = HttpServer(
        HttpServerConfig(addr="127.0.0.1:0", timeout=HELD_S),
        health=health,
        shedding=shedding,
    )
    server.include_router(router)
    started: HttpServer = await started_servers.start(server, health, serving=True, stop_grace_s=1)
    return started


async def test_http_burst_is_shed_with_503_and_retry_after_and_admitted_again_after(
    started_servers: Any, gate: Gate
) -> None:
    server = await start_http(started_servers, Health(), held_router(gate), TIGHT)
    base = f"http://127.0.0.1:{server.port}"
    shed_before = shed_total("http")
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        held = [asyncio.ensure_future(http.get("/hold")) for _ in range(2)]
        await eventually(lambda: gate.entered == 2, "two requests in the handler")
        for _ in range(BURST):
            refused = await http.get("/quick")
            assert refused.status_code == 503
            assert refused.json()["code"] == "RESOURCE_EXHAUSTED"
            assert int(refused.headers["retry-after"]) >= 1
        assert shed_total("http") - shed_before == BURST
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200
        gate.opened.set()
        assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
        assert (await http.get("/quick")).status_code == 200
    assert server.shedding.in_flight == 0
