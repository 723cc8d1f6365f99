"""The identity tests' parts: an issuer whose keys are made in the test and served over
loopback HTTP at the API server's paths, tokens signed with them, pods in the
devcluster, and micro's gRPC server with the identity guard in its chain."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import grpc
import kubernetes.client
import pytest

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.config.model import GrpcServerConfig, IdentityRule
from micro.health import Health
from micro.identity import IDENTITY_METADATA_KEY, current_caller
from micro.identity.authorization import Authorizer
from micro.identity.guard import IdentityGuard
from micro.identity.issuer import IssuerKeys
from micro.identity.pods import PodLiveness
from micro.identity.verifier import IdentityVerifier
from micro.kube import Backoff
from micro.testing.echo import EchoServicer
from micro.testing.service_tokens import CALLEE, Issuer
from micro.transport.grpc import GrpcServer


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    running = Issuer()
    yield running
    running.close()


@pytest.fixture
def issuer_api(issuer: Issuer) -> Iterator[kubernetes.client.ApiClient]:
    """The official client pointed at the issuer, as a service's ApiClient is at the API."""
    configuration = kubernetes.client.Configuration()
    configuration.host = issuer.url
    api = kubernetes.client.ApiClient(configuration)
    yield api
    api.close()  # type: ignore[no-untyped-call]


class WhoAmI(EchoServicer):
    """Echo answers the calling service's principal; Put answers nothing."""

    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.EchoResponse:
        caller = current_caller()
        return echo_pb2.EchoResponse(text=caller.principal if caller else "")

    async def Put(
        self, request: echo_pb2.PutRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.PutResponse:
        return echo_pb2.PutResponse()


class Guarded:
    """An EchoService on micro's gRPC server with an identity guard, and a stub to it."""

    def __init__(self, guard: IdentityGuard, server: GrpcServer, channel: grpc.aio.Channel):
        self.guard = guard
        self.server = server
        self.stub = echo_pb2_grpc.EchoServiceStub(channel)
        self.channel = channel

    async def echo(self, token: str | None) -> str:
        metadata = ((IDENTITY_METADATA_KEY, token),) if token is not None else ()
        answer = await self.stub.Echo(echo_pb2.EchoRequest(text="hi"), metadata=metadata)
        return str(answer.text)

    async def put(self, token: str) -> None:
        await self.stub.Put(echo_pb2.PutRequest(), metadata=((IDENTITY_METADATA_KEY, token),))

    async def refusal(self, token: str | None, method: str = "echo") -> grpc.aio.AioRpcError:
        metadata = ((IDENTITY_METADATA_KEY, token),) if token is not None else ()
        call = (
            self.stub.Echo(echo_pb2.EchoRequest(text="hi"), metadata=metadata)
            if method == "echo"
            else self.stub.Put(echo_pb2.PutRequest(), metadata=metadata)
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        return raised.value


StartGuarded = Callable[..., Awaitable[Guarded]]
ALLOW_ECHO = (IdentityRule(callers=("admin-srv",), methods=("echo.v1.EchoService/Echo",)),)


@pytest.fixture
async def start_guarded(
    issuer_api: kubernetes.client.ApiClient,
) -> AsyncIterator[StartGuarded]:
    """`await start_guarded(pods=..., rules=..., namespace=...)`: a guarded server whose
    keys come from the test's issuer; everything is stopped after the test."""
    started: list[Guarded] = []

    async def start(
        *,
        pods: kubernetes.client.ApiClient | None = None,
        namespace: str = "default",
        rules: Callable[[], Any] = lambda: ALLOW_ECHO,
        min_refetch: timedelta = timedelta(seconds=30),
    ) -> Guarded:
        liveness = (
            PodLiveness(pods, namespace, backoff=Backoff(base=0.02, cap=0.5))
            if pods is not None
            else None
        )
        keys = IssuerKeys(issuer_api, min_refetch_interval=min_refetch)
        verifier = IdentityVerifier(keys, audience=CALLEE, pods=liveness)
        guard = IdentityGuard(verifier, Authorizer(rules, namespace), pods=liveness)
        await guard.start()
        health = Health()
        server = GrpcServer(GrpcServerConfig(addr="127.0.0.1:0"), health=health, identity=guard)
        server.add_service(echo_pb2_grpc.add_EchoServiceServicer_to_server, WhoAmI())
        await server.start()
        await health.set_serving()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        started.append(Guarded(guard, server, channel))
        return started[-1]

    yield start
    for guarded in started:
        await guarded.channel.close(None)
        await guarded.server.stop(0)
        await guarded.guard.stop()


@pytest.fixture
def whoami() -> EchoServicer:
    """An EchoService whose Echo answers the calling service's principal ("" for none)."""
    return WhoAmI()


Attempt = Callable[[], Awaitable[object]]
RefusedWithin = Callable[[Attempt, float], Awaitable[grpc.aio.AioRpcError]]


@pytest.fixture
def refused_within() -> RefusedWithin:
    """`await refused_within(attempt, limit_s)`: the error of the first refused attempt,
    trying until limit_s (a bound on the wait, not a timing assertion)."""

    async def wait(
        attempt: Callable[[], Awaitable[object]], limit_s: float
    ) -> grpc.aio.AioRpcError:
        deadline = time.monotonic() + limit_s
        while True:
            try:
                await attempt()
            except grpc.aio.AioRpcError as error:
                return error
            assert time.monotonic() < deadline, "still accepted"
            await asyncio.sleep(0.02)

    return wait
