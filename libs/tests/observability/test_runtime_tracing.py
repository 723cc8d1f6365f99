"""A W3C trace crosses HTTP -> gRPC -> gRPC, and the access logs of every hop carry it."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from fastapi import APIRouter

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.config.model import TracingConfig
from micro.log import configure_logging, trace_ids
from micro.testing.echo import EchoServicer
from micro.tracing import setup_tracing
from micro.transport.client_interceptors import client_interceptors

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class Relay(EchoServicer):
    """The middle hop: asks the last hop for its trace id, prefixes its own."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def Echo(self, request: echo_pb2.EchoRequest, context: Any) -> echo_pb2.EchoResponse:
        target = f"127.0.0.1:{self.port}"
        interceptors = client_interceptors("go-micro.last-srv")
        async with grpc.aio.insecure_channel(target, interceptors=interceptors) as channel:
            last = await echo_pb2_grpc.EchoServiceStub(channel).Echo(
                echo_pb2.EchoRequest(text="trace")
            )
        return echo_pb2.EchoResponse(text=f"{trace_ids()[0]},{last.text}")


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(
        service_id="t-1", service_name="go-micro.test-srv", service_version="v0", stream=stream
    )
    yield stream
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "micro"]:
        root.removeHandler(handler)


async def test_trace_id_crosses_http_grpc_grpc(
    start_grpc: Any, start_http: Any, log_lines: io.StringIO
) -> None:
    setup_tracing(
        TracingConfig(), service_name="go-micro.test-srv", service_version="v0", instance_id="t-1"
    )
    last = await start_grpc()
    middle = await start_grpc(Relay(last.port))
    router = APIRouter()

    @router.get("/hop")
    async def hop() -> dict[str, str]:
        interceptors = client_interceptors("go-micro.middle-srv")
        target = f"127.0.0.1:{middle.port}"
        async with grpc.aio.insecure_channel(target, interceptors=interceptors) as channel:
            answer = await echo_pb2_grpc.EchoServiceStub(channel).Echo(
                echo_pb2.EchoRequest(text="x")
            )
        middle_id, last_id = answer.text.split(",")
        return {"http": trace_ids()[0], "middle": middle_id, "last": last_id}

    gateway = await start_http(router)
    async with httpx.AsyncClient(timeout=10) as client:
        continued = await client.get(
            f"http://127.0.0.1:{gateway.port}/hop", headers={"traceparent": TRACEPARENT}
        )
        fresh = await client.get(f"http://127.0.0.1:{gateway.port}/hop")
    assert continued.json() == {"http": TRACE_ID, "middle": TRACE_ID, "last": TRACE_ID}
    ids = set(fresh.json().values())
    assert len(ids) == 1
    (fresh_id,) = ids
    assert re.fullmatch("[0-9a-f]{32}", fresh_id)
    assert fresh_id != TRACE_ID

    # Every hop's access log line carries the trace id and a span id of its own.
    lines = [line for line in log_lines.getvalue().splitlines() if f"trace_id={TRACE_ID}" in line]
    assert any("msg=[HTTP] GET /hop 200" in line for line in lines)
    grpc_lines = [line for line in lines if "msg=[gRPC] /echo.v1.EchoService/Echo OK" in line]
    assert len(grpc_lines) == 2
    span_ids = {re.findall(r"span_id=([0-9a-f]{16})", line)[0] for line in grpc_lines}
    assert len(span_ids) == 2
