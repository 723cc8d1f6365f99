"""The balanced client over Pod discovery on the devcluster, with real gRPC servers."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.client import ClientFactory
from micro.config.model import BalancingConfig, GrpcClientConfig, HedgingConfig
from micro.kube import Backoff
from micro.registry import PodDiscovery

SERVICE = "go-micro.echo"
FORGED = "micro_registry_forged_instances_total"


class Cluster:
    """Replica servers, each published as a Running, Ready pod with its own IP."""

    def __init__(self, pods: Any, start_replica: Any) -> None:
        self.pods = pods
        self.start_replica = start_replica
        self.replicas: dict[str, Any] = {}

    async def add(
        self, name: str, ip: str, *, ready: bool = True, account: str | None = None
    ) -> Any:
        """account None: the service's own (echo); another one forges the registration."""
        replica, port = await self.start_replica(ip)
        self.pods.create(
            name,
            labels={"gomicro-service-app": SERVICE, "gomicro-service-id": f"{name}.{SERVICE}"},
            annotations={"gomicro-service-protocols": json.dumps({str(port): "grpc"})},
            service_account=account,
        )
        self.pods.run(name, ip, ready=ready)
        self.replicas[name] = replica
        return replica


@pytest.fixture
async def factory(pods: Any) -> AsyncIterator[ClientFactory]:
    discovery = PodDiscovery(pods.api, pods.namespace, backoff=Backoff(0.02, 0.5))
    made = ClientFactory(discovery, GrpcClientConfig(timeout=timedelta(seconds=2)))
    yield made
    await made.close()
    await discovery.close()


@pytest.fixture
def cluster(pods: Any, start_replica: Any) -> Cluster:
    return Cluster(pods, start_replica)


def hosts(pool: Any) -> list[str]:
    return sorted(e.target.rsplit(":", 1)[0] for e in pool.endpoints())


async def call(stub: Any) -> str:
    answer = await stub.Echo(echo_pb2.EchoRequest(text="d"))
    return str(answer.text)


async def test_two_then_three_replicas_share_the_load(
    cluster: Cluster, factory: ClientFactory, eventually: Any
) -> None:
    await cluster.add("dev-1", "127.0.11.1")
    await cluster.add("dev-2", "127.0.11.2")
    # Short memories of latency: equally fast replicas share about evenly (the defaults
    # favour whichever answered a little faster lately).
    even = BalancingConfig(
        latency_decay=timedelta(milliseconds=10), idle_pick_after=timedelta(milliseconds=20)
    )
    factory.update(GrpcClientConfig(timeout=timedelta(seconds=2), balancing=even))
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    pool = factory.pool(SERVICE)
    await call(stub)
    await eventually(lambda: len(pool.endpoints()) == 2)
    two = Counter([await call(stub) for _ in range(200)])
    assert set(two) == {"127.0.11.1", "127.0.11.2"}
    assert min(two.values()) >= 50, two  # expected 100 each
    await cluster.add("dev-3", "127.0.11.3")
    await eventually(lambda: len(pool.endpoints()) == 3)
    three: Counter[str] = Counter()
    for _ in range(10):
        three.update(await asyncio.gather(*(call(stub) for _ in range(30))))
    assert set(three) == {"127.0.11.1", "127.0.11.2", "127.0.11.3"}
    assert min(three.values()) >= 45, three  # expected 100 each


async def test_retries_land_on_the_other_instance(
    cluster: Cluster, factory: ClientFactory, eventually: Any
) -> None:
    broken = await cluster.add("dev-1", "127.0.12.1")
    healthy = await cluster.add("dev-2", "127.0.12.2")
    broken.fail_with = grpc.StatusCode.UNAVAILABLE
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    await call(stub)
    await eventually(lambda: len(factory.pool(SERVICE).endpoints()) == 2)
    answers = Counter([await call(stub) for _ in range(60)])
    assert answers == {"127.0.12.2": 60}
    assert broken.calls > 0
    assert healthy.calls == 61


async def test_a_deleted_pod_finishes_its_in_flight_call_and_gets_no_more(
    cluster: Cluster, factory: ClientFactory, eventually: Any, pods: Any
) -> None:
    slow = await cluster.add("dev-1", "127.0.13.1")
    # Not hedged: the slow call must finish where it was sent, on the deleted pod.
    factory.update(
        GrpcClientConfig(timeout=timedelta(seconds=2), hedging=HedgingConfig(enabled=False))
    )
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    await call(stub)
    slow.delay_s = 0.5
    slow.called.clear()
    in_flight = asyncio.ensure_future(call(stub))
    await slow.called.wait()
    await cluster.add("dev-2", "127.0.13.2")
    pods.delete("dev-1")  # deletionTimestamp: routable no more
    pool = factory.pool(SERVICE)
    await eventually(lambda: hosts(pool) == ["127.0.13.2"])
    assert await in_flight == "127.0.13.1"  # not dropped
    assert {await call(stub) for _ in range(20)} == {"127.0.13.2"}
    await eventually(lambda: pool.draining() == [])


async def test_no_ready_pod_fails_at_once_with_unavailable(
    cluster: Cluster, factory: ClientFactory
) -> None:
    await cluster.add("dev-1", "127.0.14.1", ready=False)
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Echo(echo_pb2.EchoRequest(text="d"), timeout=60)
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    assert SERVICE in (raised.value.details() or "")


async def test_a_pod_under_another_account_is_never_called(
    cluster: Cluster, factory: ClientFactory, eventually: Any
) -> None:
    before = REGISTRY.get_sample_value(FORGED, {"service": SERVICE}) or 0.0
    forged = await cluster.add("forged", "127.0.15.1", account="data-srv")
    genuine = await cluster.add("genuine", "127.0.15.2")
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    answers = Counter([await call(stub) for _ in range(100)])
    assert answers == {"127.0.15.2": 100}
    assert forged.calls == 0  # the server at the forged pod's address saw nothing
    assert genuine.calls == 100
    assert hosts(factory.pool(SERVICE)) == ["127.0.15.2"]
    assert REGISTRY.get_sample_value(FORGED, {"service": SERVICE}) == before + 1
