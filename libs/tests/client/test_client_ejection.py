"""Outlier ejection: one endpoint's record, and the pool's picks, with the time given by
hand (the channels are never used: nothing here connects)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from micro.client import CallSettings, InstancePool
from micro.client.ejection import Outlier, ejectable
from micro.client.pool import Endpoint
from micro.config.model import EjectionConfig, GrpcClientConfig, StaticService
from micro.registry import ServiceInstance, StaticDiscovery

SERVICE = "go-micro.echo"
CFG = EjectionConfig(
    consecutive_failures=3,
    failure_rate=0.5,
    window=timedelta(seconds=10),
    min_requests=10,
    base_time=timedelta(seconds=10),
    max_time=timedelta(seconds=25),
    success_run=5,
)


def test_failures_in_a_row_eject() -> None:
    outlier = Outlier()
    assert outlier.record(True, 0.0, CFG) is None
    assert outlier.record(True, 0.1, CFG) is None
    assert outlier.record(True, 0.2, CFG) == "3 failures in a row"


def test_a_success_breaks_the_row() -> None:
    outlier = Outlier()
    for now in range(6):
        assert outlier.record(now % 3 == 2, float(now), CFG) is None


def test_a_failure_rate_over_the_window_ejects_once_enough_calls_were_seen() -> None:
    outlier = Outlier()
    verdicts = [outlier.record(n % 2 == 0, n * 0.1, CFG) for n in range(10)]
    assert verdicts[:9] == [None] * 9  # fewer than min_requests: not judged yet
    assert verdicts[9] is None  # the tenth succeeded
    assert outlier.record(True, 1.0, CFG) == "6 of its last 11 calls failed"


def test_outcomes_older_than_the_window_are_forgotten() -> None:
    outlier = Outlier()
    for n in range(10):
        outlier.record(n % 2 == 0, n * 0.1, CFG)
    for n in range(10):
        outlier.record(False, 20.0 + n * 0.1, CFG)
    assert outlier.record(True, 21.0, CFG) is None  # 1 of the last 11


def test_each_ejection_in_a_row_lasts_longer_up_to_the_cap() -> None:
    outlier = Outlier()
    assert outlier.eject(0.0, CFG) == 10.0
    assert outlier.ejected
    assert not outlier.due_back(9.9)
    assert outlier.due_back(10.0)
    outlier.bring_back()
    # Back on probation: one failure is enough.
    assert outlier.record(True, 10.1, CFG) == "failed again after its return"
    assert outlier.eject(10.1, CFG) == 20.0
    outlier.bring_back()
    assert outlier.eject(30.1, CFG) == 25.0  # capped at max_time


def test_answers_to_calls_sent_before_the_ejection_are_ignored() -> None:
    outlier = Outlier()
    outlier.eject(0.0, CFG)
    assert outlier.record(True, 1.0, CFG) is None


def test_a_run_of_successes_clears_the_record() -> None:
    outlier = Outlier()
    outlier.eject(0.0, CFG)
    outlier.bring_back()
    for n in range(5):
        assert outlier.record(False, 10.0 + n, CFG) is None
    assert not outlier.probing
    assert outlier.record(True, 16.0, CFG) is None  # no longer ejected by one failure
    assert outlier.eject(20.0, CFG) == 10.0  # the first in a row again


@pytest.mark.parametrize(
    ("size", "percent", "allowed"),
    [(1, 100, 0), (2, 10, 1), (3, 50, 1), (4, 50, 2), (4, 100, 3), (10, 20, 2)],
)
def test_the_share_of_ejected_endpoints_is_bounded(size: int, percent: int, allowed: int) -> None:
    cfg = EjectionConfig(max_ejected_percent=percent)
    assert [ejectable(size, out, cfg) for out in range(size)] == [
        out < allowed for out in range(size)
    ]


def test_ejection_turned_off_ejects_nothing() -> None:
    assert not ejectable(4, 0, EjectionConfig(enabled=False))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def discovery(*hosts: int) -> StaticDiscovery:
    endpoints = tuple(f"grpc://127.0.0.{n}:1" for n in hosts)
    return StaticDiscovery([StaticService(name=SERVICE, endpoints=endpoints)])


async def instances(*hosts: int) -> list[ServiceInstance]:
    return await discovery(*hosts).instances(SERVICE)


@pytest.fixture
async def pool(clock: Clock) -> AsyncIterator[InstancePool]:
    cfg = GrpcClientConfig(ejection=CFG.model_copy(update={"max_ejected_percent": 50}))
    made = InstancePool(
        SERVICE,
        discovery(1, 2, 3, 4),
        interceptors=lambda _: (),
        settings=CallSettings(cfg),
        clock=clock,
    )
    await made.ready()
    yield made
    await made.close()


def fail(endpoint: Endpoint, times: int) -> None:
    for _ in range(times):
        endpoint.begin()
        endpoint.end(0.001, failed=True)


async def test_an_ejected_endpoint_is_skipped_until_its_time_is_up(
    pool: InstancePool, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "micro.client")
    bad = pool.endpoints()[0]
    fail(bad, 3)
    assert bad.outlier.ejected
    assert bad not in {pool.pick() for _ in range(200)}
    clock.now += 10.0
    assert bad in {pool.pick() for _ in range(200)}
    assert bad.outlier.ejected_until is None
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        f"client {SERVICE}: instance {bad.target} ejected for 10s: 3 failures in a row"
        " (ejection 1 in a row)",
        f"client {SERVICE}: instance {bad.target} back from ejection",
    ]


async def test_no_more_than_the_share_is_ejected(pool: InstancePool) -> None:
    for endpoint in pool.endpoints():
        fail(endpoint, 3)
    assert sum(e.outlier.ejected for e in pool.endpoints()) == 2  # 50% of 4


async def test_when_only_ejected_endpoints_are_left_one_is_picked(pool: InstancePool) -> None:
    first, second, third, fourth = pool.endpoints()
    fail(first, 3)
    assert first.outlier.ejected
    assert pool.pick(exclude=[second, third, fourth]) is first


async def test_an_endpoint_removed_and_added_again_starts_afresh(pool: InstancePool) -> None:
    bad = pool.endpoints()[0]
    fail(bad, 3)
    pool.update(await instances(2, 3, 4))
    pool.update(await instances(1, 2, 3, 4))
    back = next(e for e in pool.endpoints() if e.target == bad.target)
    assert back is bad  # its channel was still draining: reused
    assert not back.outlier.ejected
    assert back.load.latency_s is None


async def test_a_slower_endpoint_loses_the_draw_until_it_idles(
    pool: InstancePool, clock: Clock
) -> None:
    first, second, *_ = pool.endpoints()
    for endpoint, latency in ((first, 0.001), (second, 0.100)):
        endpoint.begin()
        endpoint.end(latency)
    both = [first, second]
    rest = [e for e in pool.endpoints() if e not in both]
    assert {pool.pick(exclude=rest) for _ in range(20)} == {first}
    clock.now += 1.0  # balancing.idle_pick_after
    assert pool.pick(exclude=rest) is second  # once
    assert pool.pick(exclude=rest) is first


async def test_the_dependency_override_applies_from_the_next_answer(clock: Clock) -> None:
    settings = CallSettings(GrpcClientConfig())
    made = InstancePool(
        SERVICE, discovery(1, 2), interceptors=lambda _: (), settings=settings, clock=clock
    )
    await made.ready()
    first, second = made.endpoints()
    fail(first, 2)
    assert first.outlier.ejected_until is None  # 5 in a row by default
    override = {"ejection": {"consecutive_failures": 2}}
    settings.update(GrpcClientConfig(dependencies={SERVICE: override}))
    fail(second, 2)
    await made.close()
    assert second.outlier.ejected
