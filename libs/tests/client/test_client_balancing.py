"""The balanced client against real grpc.aio servers on several loopback addresses."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.client import ClientFactory, idempotent_methods
from micro.config.model import (
    BalancingConfig,
    GrpcClientConfig,
    HedgingConfig,
    StaticService,
    TracingConfig,
)
from micro.log import trace_ids
from micro.registry import ServiceInstance, StaticDiscovery
from micro.testing import waiting
from micro.testing.echo import EchoServicer
from micro.tracing import setup_tracing, tracer

SERVICE = "go-micro.echo"


# Replica servers come from conftest.py's start_replica: (replica, port) on a host.
StartReplica = Callable[[str], Awaitable[tuple[Any, int]]]


async def start_on(start_replica: StartReplica, host: str) -> tuple[Any, str]:
    replica, port = await start_replica(host)
    return replica, f"grpc://{host}:{port}"


def factory_cfg(timeout_s: float = 2.0, max_attempts: int = 3, **more: Any) -> GrpcClientConfig:
    return GrpcClientConfig(timeout=timedelta(seconds=timeout_s), max_attempts=max_attempts, **more)


def factory_for(
    *endpoints: str, timeout_s: float = 2.0, max_attempts: int = 3, **more: Any
) -> ClientFactory:
    discovery = StaticDiscovery([StaticService(name=SERVICE, endpoints=endpoints)])
    return ClientFactory(discovery, factory_cfg(timeout_s, max_attempts, **more))


# Short memories of latency: equally fast replicas share about evenly, where the defaults
# favour whichever answered a little faster lately (test_client_outliers.py covers those).
EVEN = BalancingConfig(
    latency_decay=timedelta(milliseconds=10), idle_pick_after=timedelta(milliseconds=20)
)


async def test_calls_are_shared_by_three_replicas(start_replica: StartReplica) -> None:
    replicas = [await start_on(start_replica, f"127.0.0.{n}") for n in (2, 3, 4)]
    factory = factory_for(*(endpoint for _, endpoint in replicas), balancing=EVEN)
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    answers: Counter[str] = Counter()
    for _ in range(150):
        answers[(await stub.Echo(echo_pb2.EchoRequest(text="d"))).text] += 1
    for _ in range(5):  # concurrent waves: outstanding calls steer the choice
        wave = await asyncio.gather(*(stub.Echo(echo_pb2.EchoRequest(text="d")) for _ in range(30)))
        answers.update(answer.text for answer in wave)
    await factory.close()
    assert sum(answers.values()) == 300
    assert set(answers) == {"127.0.0.2", "127.0.0.3", "127.0.0.4"}
    assert min(answers.values()) >= 45, answers  # each well above nothing (expected 100)


async def test_idempotent_calls_retry_on_another_instance(start_replica: StartReplica) -> None:
    (broken, broken_endpoint), (healthy, healthy_endpoint) = [
        await start_on(start_replica, host) for host in ("127.0.0.5", "127.0.0.6")
    ]
    broken.fail_with = grpc.StatusCode.UNAVAILABLE
    factory = factory_for(broken_endpoint, healthy_endpoint)
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    answers = [await stub.Echo(echo_pb2.EchoRequest(text="d")) for _ in range(40)]
    await factory.close()
    assert {a.text for a in answers} == {"127.0.0.6"}
    assert healthy.calls == 40
    assert broken.calls > 0  # it was tried, and each time the retry went to the other one


async def test_retries_are_bounded_by_max_attempts(start_replica: StartReplica) -> None:
    replicas = [await start_on(start_replica, f"127.0.0.{n}") for n in (7, 8, 9)]
    for replica, _ in replicas:
        replica.fail_with = grpc.StatusCode.UNAVAILABLE
    factory = factory_for(*(e for _, e in replicas), max_attempts=2)
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Echo(echo_pb2.EchoRequest(text="d"))
    await factory.close()
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    assert sum(r.calls for r, _ in replicas) == 2
    assert len([r for r, _ in replicas if r.calls]) == 2  # two different instances


async def test_non_idempotent_calls_are_not_retried(start_replica: StartReplica) -> None:
    replicas = [await start_on(start_replica, f"127.0.0.{n}") for n in (10, 11)]
    for replica, _ in replicas:
        replica.fail_with = grpc.StatusCode.UNAVAILABLE
    factory = factory_for(*(e for _, e in replicas))
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Append(echo_pb2.AppendRequest())
    await factory.close()
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    assert sum(r.calls for r, _ in replicas) == 1


async def test_other_errors_are_not_retried(start_replica: StartReplica) -> None:
    replicas = [await start_on(start_replica, f"127.0.0.{n}") for n in (12, 13)]
    for replica, _ in replicas:
        replica.fail_with = grpc.StatusCode.NOT_FOUND
    factory = factory_for(*(e for _, e in replicas))
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Echo(echo_pb2.EchoRequest(text="d"))
    await factory.close()
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND
    assert sum(r.calls for r, _ in replicas) == 1


async def test_no_ready_instance_fails_at_once_naming_the_service() -> None:
    factory = factory_for()
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        # A long deadline: the answer must not be a deadline expiry.
        await stub.Echo(echo_pb2.EchoRequest(text="d"), timeout=60)
    await factory.close()
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    assert raised.value.details() == f"no ready instance of {SERVICE}"


async def test_the_deadline_comes_from_config(start_replica: StartReplica) -> None:
    replica, endpoint = await start_on(start_replica, "127.0.0.14")
    replica.delay_s = 1.0
    factory = factory_for(endpoint, timeout_s=0.1)
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Echo(echo_pb2.EchoRequest(text="d"))
    answer = await stub.Echo(echo_pb2.EchoRequest(text="d"), timeout=5)  # the call's own
    await factory.close()
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert answer.text == "127.0.0.14"


async def test_removed_instances_finish_their_calls_then_close(start_replica: StartReplica) -> None:
    (slow, slow_endpoint), (_, other_endpoint) = [
        await start_on(start_replica, host) for host in ("127.0.0.15", "127.0.0.16")
    ]
    slow.delay_s = 0.5
    factory = factory_for(slow_endpoint)
    # Not hedged: the slow call must finish where it was sent, on the removed instance.
    factory.update(factory_cfg(hedging=HedgingConfig(enabled=False)))
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    in_flight = asyncio.ensure_future(stub.Echo(echo_pb2.EchoRequest(text="d")))
    await slow.called.wait()
    pool = factory.pool(SERVICE)
    # What discovery does when the slow instance goes away and another appears:
    pool.update([ServiceInstance("other", SERVICE, "v1", endpoints=(other_endpoint,))])
    after = await stub.Echo(echo_pb2.EchoRequest(text="d"))
    assert after.text == "127.0.0.16"
    assert pool.draining() == ["127.0.0.15:" + slow_endpoint.rsplit(":", 1)[1]]
    assert (await in_flight).text == "127.0.0.15"  # not dropped
    for _ in range(100):
        if not pool.draining():
            break
        await asyncio.sleep(0.01)
    assert pool.draining() == []
    await factory.close()


def test_idempotent_methods_come_from_the_proto_options() -> None:
    assert idempotent_methods(echo_pb2_grpc.EchoServiceStub) == {
        "/echo.v1.EchoService/Echo",
        "/echo.v1.EchoService/Put",
    }


async def test_the_trace_context_reaches_the_instance(start_grpc: Any) -> None:
    setup_tracing(
        TracingConfig(), service_name="go-micro.test-srv", service_version="v0", instance_id="t-1"
    )
    server = await start_grpc()  # answers the trace id it sees for the name "trace"
    factory = factory_for(f"grpc://127.0.0.1:{server.port}")  # default interceptors
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    with tracer().start_as_current_span("caller"):
        caller_trace = trace_ids()[0]
        answer = await stub.Echo(echo_pb2.EchoRequest(text="trace"))
    await factory.close()
    assert answer.text == caller_trace
    assert len(caller_trace) == 32


class CountingAppends(EchoServicer):
    def __init__(self) -> None:
        self.calls = 0

    async def Append(
        self, request: echo_pb2.AppendRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.AppendResponse:
        self.calls += 1
        return echo_pb2.AppendResponse()


async def test_non_idempotent_calls_go_elsewhere_when_an_instance_cannot_be_reached(
    start_replica: StartReplica,
) -> None:
    """A crashed instance still listed by discovery: the call was never sent, so even a
    non-idempotent one goes to another instance instead of failing."""
    live, live_endpoint = await start_on(start_replica, "127.0.0.14")
    crashed = grpc.aio.server()  # its own server, to stop it alone
    crashed_replica = CountingAppends()
    echo_pb2_grpc.add_EchoServiceServicer_to_server(crashed_replica, crashed)
    crashed_port = crashed.add_insecure_port("127.0.0.15:0")
    await crashed.start()
    factory = factory_for(live_endpoint, f"grpc://127.0.0.15:{crashed_port}")
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    for _ in range(20):  # both connected and used
        await stub.Append(echo_pb2.AppendRequest())
    assert crashed_replica.calls > 0
    await crashed.stop(0)  # gone, but still in the registry
    # Once the client has seen the connection drop: a call sent on it before then fails
    # after it was sent, which a non-idempotent call must not retry (the next test).
    (gone,) = [
        e for e in factory.pool(SERVICE).endpoints() if e.target.endswith(f":{crashed_port}")
    ]
    ready = grpc.ChannelConnectivity.READY
    if gone.channel.get_state() is ready:
        await asyncio.wait_for(gone.channel.wait_for_state_change(ready), timeout=10)
    for _ in range(40):
        await stub.Append(echo_pb2.AppendRequest())
    await factory.close()
    assert live.calls + crashed_replica.calls == 60


async def test_a_non_idempotent_call_sent_and_failed_is_still_not_retried(
    start_replica: StartReplica,
) -> None:
    replicas = [await start_on(start_replica, f"127.0.0.{n}") for n in (16, 17)]
    factory = factory_for(*(e for _, e in replicas))
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    await asyncio.gather(*(stub.Append(echo_pb2.AppendRequest()) for _ in range(10)))
    for replica, _ in replicas:  # connected; now every call reaches a server and fails
        replica.fail_with = grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Append(echo_pb2.AppendRequest())
    await factory.close()
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    assert sum(r.calls for r, _ in replicas) == 11


class HeldConnections:
    """A loopback TCP listener in front of a server that accepts connections but
    forwards nothing until released: a channel to it stays connecting (TCP is up, the
    server's HTTP/2 settings never come) as to an instance slow to accept."""

    def __init__(self, host: str, target_port: int | None) -> None:
        self.host = host
        self.target_port = target_port  # None: never forwards
        self.port = 0
        self.accepted = 0
        self.released = asyncio.Event()
        self._pipes: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._hold, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"grpc://{self.host}:{self.port}"

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            await self.released.wait()
            if self.target_port is None:
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.host, self.target_port
            )
            pipes = [
                asyncio.create_task(pipe(reader, upstream_writer)),
                asyncio.create_task(pipe(upstream_reader, writer)),
            ]
            self._pipes.update(pipes)
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._pipes:
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(64 * 1024):
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def held_connections() -> AsyncIterator[Callable[[str, int | None], HeldConnections]]:
    """`held_connections(host, target_port)`; every listener is closed after the test."""
    listeners: list[HeldConnections] = []

    def make(host: str, target_port: int | None) -> HeldConnections:
        listeners.append(HeldConnections(host, target_port))
        return listeners[-1]

    yield make
    for listener in listeners:
        listener.released.set()  # its waiting handlers end with the listener
        await listener.close()


async def test_a_burst_counts_the_calls_still_connecting(
    start_replica: StartReplica, held_connections: Callable[[str, int | None], HeldConnections]
) -> None:
    """Non-idempotent calls wait for their instance to connect before being sent; they
    count as in flight from the pick, so a burst is not all sent to the instance whose
    connection is slow (it would look idle the whole time)."""
    burst = 20
    ready, ready_endpoint = await start_on(start_replica, "127.0.0.18")
    slow, slow_port = await start_replica("127.0.0.19")
    slow_to_connect = held_connections("127.0.0.19", slow_port)
    factory = factory_for(ready_endpoint, await slow_to_connect.start(), timeout_s=20)
    pool = factory.pool(SERVICE)
    await pool.ready()
    (connected,) = [e for e in pool.endpoints() if e.target.startswith("127.0.0.18:")]
    await connected.channel.channel_ready()
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    calls = asyncio.gather(*(stub.Append(echo_pb2.AppendRequest()) for _ in range(burst)))
    # Every call has picked its instance before the first connection arrives.
    await waiting.eventually(lambda: slow_to_connect.accepted > 0, "the slow connection")
    slow_to_connect.released.set()
    await calls
    await factory.close()
    assert ready.calls + slow.calls == burst
    assert min(ready.calls, slow.calls) >= burst // 4, (ready.calls, slow.calls)


async def test_a_deadline_passing_while_connecting_is_deadline_exceeded(
    held_connections: Callable[[str, int | None], HeldConnections],
) -> None:
    never_answers = held_connections("127.0.0.20", None)
    factory = factory_for(await never_answers.start())
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Append(echo_pb2.AppendRequest(), timeout=0.5)
    await factory.close()
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert raised.value.details() == (
        f"deadline passed while connecting to 127.0.0.20:{never_answers.port}"
    )
