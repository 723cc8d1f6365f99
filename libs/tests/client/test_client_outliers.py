"""Latency-aware picks and outlier ejection against real grpc.aio servers on loopback."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
from prometheus_client import REGISTRY

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.client import ClientFactory
from micro.client.pool import Endpoint, InstancePool
from micro.config.model import EjectionConfig, GrpcClientConfig, HedgingConfig, StaticService
from micro.registry import StaticDiscovery

StartReplica = Callable[[str], Awaitable[tuple[Any, int]]]
WAVE = 20  # calls in flight at once: enough that in-flight counts steer picks
MAX_WAVES = 300  # bounds every loop below (each wave takes milliseconds on loopback)


async def replicas(start_replica: StartReplica, *hosts: str) -> tuple[list[Any], list[str]]:
    started = [await start_replica(host) for host in hosts]
    endpoints = [f"grpc://{host}:{port}" for host, (_, port) in zip(hosts, started, strict=True)]
    return [replica for replica, _ in started], endpoints


def factory_for(
    service: str, endpoints: list[str], ejection: EjectionConfig, *, hedging: bool = True
) -> ClientFactory:
    discovery = StaticDiscovery([StaticService(name=service, endpoints=tuple(endpoints))])
    cfg = GrpcClientConfig(
        timeout=timedelta(seconds=2),
        ejection=ejection,
        hedging=HedgingConfig(enabled=hedging),
    )
    return ClientFactory(discovery, cfg)


async def wave(stub: Any, size: int = WAVE) -> list[str]:
    """`size` concurrent calls; each answer's host."""
    answers = await asyncio.gather(
        *(stub.Echo(echo_pb2.EchoRequest(text="d")) for _ in range(size))
    )
    return [answer.text for answer in answers]


def ejected(pool: InstancePool) -> list[Endpoint]:
    return [e for e in pool.endpoints() if e.outlier.ejected]


async def test_a_slow_replica_gets_a_small_share(start_replica: StartReplica) -> None:
    (slow, *_), endpoints = await replicas(start_replica, "127.0.21.1", "127.0.21.2", "127.0.21.3")
    slow.delay_s = 0.25
    # Unhedged: the picks alone are measured (a hedge would answer in the slow one's place).
    factory = factory_for("go-micro.slowish", endpoints, EjectionConfig(), hedging=False)
    stub = factory.stub("go-micro.slowish", echo_pb2_grpc.EchoServiceStub)
    answers: Counter[str] = Counter()
    for _ in range(30):
        # Few at once: with many, the queue of the fast ones (same loop) costs as much.
        answers.update(await wave(stub, 4))
    seen = {
        e.target.rsplit(":", 1)[0]: REGISTRY.get_sample_value(
            "micro_client_endpoint_latency_ewma_seconds",
            {"service": "go-micro.slowish", "endpoint": e.target},
        )
        for e in factory.pool("go-micro.slowish").endpoints()
    }
    await factory.close()
    # Every answer of the slow one took its delay at least, so its average did too.
    assert (seen["127.0.21.1"] or 0) >= slow.delay_s, seen
    assert sum(answers.values()) == 30 * 4
    # An even share would be a third; the slow one is tried, then mostly passed over.
    assert 0 < answers["127.0.21.1"] <= sum(answers.values()) / 10, answers


async def test_an_idle_slow_replica_is_probed_aside_and_no_call_waits_on_it(
    start_replica: StartReplica,
) -> None:
    (slow, _), endpoints = await replicas(start_replica, "127.0.21.4", "127.0.21.5")
    slow.delay_s = 0.25
    service = "go-micro.probed"
    discovery = StaticDiscovery([StaticService(name=service, endpoints=tuple(endpoints))])
    cfg = GrpcClientConfig.model_validate(
        {
            # Every draw the slow one loses finds it idle: each would be a forced pick.
            "balancing": {"idle_pick_after": timedelta(microseconds=1)},
            "hedging": {"max_hedges": 0},  # the probes alone keep the calls off it
            "retry_budget": {"burst": 100},  # a token for each probe
        }
    )
    factory = ClientFactory(discovery, cfg)
    stub = factory.stub(service, echo_pb2_grpc.EchoServiceStub)
    labels = {"service": service}
    probes_before = REGISTRY.get_sample_value("micro_client_probes_sent_total", labels) or 0
    try:
        answers = [(await stub.Echo(echo_pb2.EchoRequest(text="d"))).text for _ in range(40)]
        probes = REGISTRY.get_sample_value("micro_client_probes_sent_total", labels) or 0
    finally:
        await factory.close()
    # Before any answer the two look alike: the first call may go to either.
    assert answers[1:] == ["127.0.21.5"] * 39  # none answered by the slow one after
    assert probes - probes_before >= 1
    assert slow.calls >= probes - probes_before  # each probe reached it


async def test_a_replica_failing_half_its_calls_is_ejected_and_back_once_it_recovers(
    start_replica: StartReplica,
) -> None:
    service = "go-micro.flaky"
    (flaky, *_), endpoints = await replicas(start_replica, "127.0.22.1", "127.0.22.2", "127.0.22.3")
    flaky.fail_with, flaky.fail_every = grpc.StatusCode.UNAVAILABLE, 2  # never twice in a row
    ejection = EjectionConfig(min_requests=10, base_time=timedelta(milliseconds=300))
    factory = factory_for(service, endpoints, ejection)
    stub = factory.stub(service, echo_pb2_grpc.EchoServiceStub)
    pool = factory.pool(service)
    before = REGISTRY.get_sample_value("micro_client_ejections_total", {"service": service})
    waves = 0
    while not ejected(pool) and waves < MAX_WAVES:
        await wave(stub)  # every call answers: retried elsewhere when the flaky one fails
        waves += 1
    assert [e.target for e in ejected(pool)] == [endpoints[0].removeprefix("grpc://")]
    gauge = {"service": service, "state": "ejected"}
    assert REGISTRY.get_sample_value("micro_client_endpoints", gauge) == 1
    assert REGISTRY.get_sample_value("micro_client_ejections_total", {"service": service}) == 1 + (
        before or 0
    )
    flaky.fail_with = None
    recovered = flaky.calls
    waves = 0
    while (ejected(pool) or flaky.calls < recovered + 10) and waves < MAX_WAVES:
        await wave(stub)
        waves += 1
    await factory.close()
    assert not ejected(pool)
    assert flaky.calls >= recovered + 10  # back in, and answering


async def test_no_more_than_the_configured_share_is_ejected(start_replica: StartReplica) -> None:
    service = "go-micro.broken"
    hosts = ("127.0.23.1", "127.0.23.2", "127.0.23.3", "127.0.23.4")
    (one, two, three, _), endpoints = await replicas(start_replica, *hosts)
    for replica in (one, two, three):
        replica.fail_with = grpc.StatusCode.UNAVAILABLE
    ejection = EjectionConfig(max_ejected_percent=50, base_time=timedelta(minutes=1))
    factory = factory_for(service, endpoints, ejection)
    stub = factory.stub(service, echo_pb2_grpc.EchoServiceStub)
    pool = factory.pool(service)
    counts: list[int] = []
    while len(counts) < MAX_WAVES and counts.count(2) < 5:  # a few waves past the second
        outcomes = await asyncio.gather(
            *(stub.Echo(echo_pb2.EchoRequest(text="d")) for _ in range(WAVE)),
            return_exceptions=True,
        )
        failures = [o for o in outcomes if not isinstance(o, echo_pb2.EchoResponse)]
        assert all(isinstance(f, grpc.aio.AioRpcError) for f in failures), failures
        counts.append(len(ejected(pool)))
    await factory.close()
    # Three fail every call, but 50% of 4 may be out at once.
    assert max(counts) == 2, counts
    assert "127.0.23.4" not in {e.target.rsplit(":", 1)[0] for e in ejected(pool)}
