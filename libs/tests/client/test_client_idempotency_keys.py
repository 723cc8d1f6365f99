"""Keyed methods: every attempt of one logical call carries the same x-idempotency-key,
and such calls are retried like idempotent ones, against real grpc.aio servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.client import ClientFactory
from micro.client.idempotency import (
    IDEMPOTENCY_KEY_METADATA,
    idempotent_methods,
    keyed_methods,
    serving_key,
)
from micro.config.model import GrpcClientConfig, StaticService
from micro.registry import StaticDiscovery
from micro.testing.echo import EchoServicer

SERVICE = "go-micro.echo"


class KeyRecorder(EchoServicer):
    """Records the key of each AppendOnce it receives in `keys` (shared by the replicas
    of a test); with fail_first, the first attempt of each key fails UNAVAILABLE."""

    def __init__(self, keys: list[str | None]) -> None:
        self.keys = keys
        self.fail_first = False

    async def AppendOnce(
        self, request: echo_pb2.AppendOnceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.AppendOnceResponse:
        metadata = dict(context.invocation_metadata() or ())
        key = metadata.get(IDEMPOTENCY_KEY_METADATA)
        first = key not in self.keys
        self.keys.append(key)
        if self.fail_first and first:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "scripted failure")
        return echo_pb2.AppendOnceResponse(entries=[echo_pb2.Entry(text=request.text)])


StartRecorder = Callable[[str], Awaitable[tuple[KeyRecorder, str]]]


@pytest.fixture
async def start_recorder() -> AsyncIterator[StartRecorder]:
    servers: list[grpc.aio.Server] = []
    keys: list[str | None] = []

    async def start(host: str) -> tuple[KeyRecorder, str]:
        recorder = KeyRecorder(keys)
        server = grpc.aio.server()
        echo_pb2_grpc.add_EchoServiceServicer_to_server(recorder, server)
        port = server.add_insecure_port(f"{host}:0")
        await server.start()
        servers.append(server)
        return recorder, f"grpc://{host}:{port}"

    yield start
    await asyncio.gather(*(server.stop(0) for server in servers))


def factory_for(*endpoints: str) -> ClientFactory:
    discovery = StaticDiscovery([StaticService(name=SERVICE, endpoints=endpoints)])
    return ClientFactory(discovery, GrpcClientConfig(timeout=timedelta(seconds=2)))


def test_keyed_methods_come_from_the_micro_option() -> None:
    assert keyed_methods(echo_pb2_grpc.EchoServiceStub) == {"/echo.v1.EchoService/AppendOnce"}
    # Keyed does not make a method idempotent: a repeat without the key is still unsafe.
    assert "/echo.v1.EchoService/AppendOnce" not in idempotent_methods(
        echo_pb2_grpc.EchoServiceStub
    )


async def test_a_keyed_call_is_retried_elsewhere_with_the_same_key(
    start_recorder: StartRecorder,
) -> None:
    replicas = [await start_recorder(host) for host in ("127.0.0.60", "127.0.0.61")]
    for recorder, _ in replicas:
        recorder.fail_first = True
    factory = factory_for(*(endpoint for _, endpoint in replicas))
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    try:
        for n in range(20):
            answer = await stub.AppendOnce(echo_pb2.AppendOnceRequest(text=str(n)))
            assert [e.text for e in answer.entries] == [str(n)]
    finally:
        await factory.close()
    keys = replicas[0][0].keys
    assert all(k is not None and len(k) == 32 for k in keys)
    assert len(set(keys)) == 20  # one key per logical call
    assert all(keys.count(k) == 2 for k in keys)  # its retry repeated the same key


async def test_a_call_made_while_serving_a_keyed_request_derives_its_key(
    start_recorder: StartRecorder,
) -> None:
    recorder, endpoint = await start_recorder("127.0.0.62")
    factory = factory_for(endpoint)
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    try:
        with serving_key("request-key-1"):
            await stub.AppendOnce(echo_pb2.AppendOnceRequest(text="a"))
        with serving_key("request-key-1"):  # the served request, repeated
            await stub.AppendOnce(echo_pb2.AppendOnceRequest(text="a"))
        with serving_key("request-key-2"):
            await stub.AppendOnce(echo_pb2.AppendOnceRequest(text="a"))
        own = (("x-other", "v"), (IDEMPOTENCY_KEY_METADATA, "the-callers-own"))
        await stub.AppendOnce(echo_pb2.AppendOnceRequest(text="a"), metadata=own)
    finally:
        await factory.close()
    first, repeated, other, explicit = recorder.keys
    assert first == repeated
    assert first != other
    assert "request-key-1" not in str(first)  # derived, not the served key itself
    assert explicit == "the-callers-own"
