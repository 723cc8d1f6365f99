"""Issue 16's scenarios on the whole system, each against the calm baseline of the same
run (device lookups through admin-srv and data-srv, measured once before the first):

- one device-srv replica slowed by 200 ms (`fault.pods` names it): caller p99 within
  1.5x of calm;
- one replica answering UNAVAILABLE to half its calls: no failed (idempotent) lookup,
  and every caller busy enough to judge it ejects it within EJECTION_BOUND_S (metrics);
- 4x data-srv's measured capacity offered open-loop from a process of its own:
  goodput >= 0.8 of capacity, accepted p99 bounded, no restart, recovery in seconds;
- device-srv answering UNAVAILABLE to every call for OUTAGE_S under load: the breaker
  opens, failures fail faster than calm's successes, attempts <= 1.2x requests, and the
  lookups succeed again after.

Each drill is a `fault` section in device-srv's ConfigMap, taken out at the end of its
test whatever happens, so the next one starts calm.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import httpx
import pytest

from devcluster.runner.testing import wait_for

from ..cluster_load import Load, Request
from ..cluster_system import NAMESPACE, REPO_ROOT, System
from . import drills, generator
from .chaos import Chaos, restart_count, wait_steady
from .conftest import CLIENTS, OVERLOAD_S, PHASE_S
from .report import Report, percentile, phase_figures

OUTAGE_S = 10.0
EJECTION_BOUND_S = 15.0
EJECTION_CALLS = 20  # ejection.min_requests by default
OVERLOAD_MULTIPLE = 4.0
CAPACITY_S = 5.0
# The lookups succeed again within this after a drill ends (breakers close gradually).
RECOVERY_BOUND_S = 10.0
DEVICE_OPERATIONS = ("device_admin", "device_data")
# Bound on each client's requests per second of a phase (the loop's own bound).
REQUESTS_PER_CLIENT_SECOND = 100

pytestmark = pytest.mark.timeout(600)


def device_lookups(system: System, seconds: float) -> Load:
    """Device lookups from CLIENTS clients for at most `seconds`, started."""
    load = Load(
        system,
        CLIENTS,
        duration_s=seconds,
        limit=int(REQUESTS_PER_CLIENT_SECOND * seconds),
        operations=DEVICE_OPERATIONS,
    )
    load.start()
    return load


def device_load(system: System, seconds: float) -> list[Request]:
    """Device lookups from CLIENTS clients for `seconds` (their login left out)."""
    load = device_lookups(system, seconds)
    time.sleep(seconds)  # the load's own length: it runs for `seconds` and stops itself
    return [r for r in load.stop() if r.operation in DEVICE_OPERATIONS]


@pytest.fixture(scope="module")
def calm(system_and_chaos: tuple[System, Chaos], report: Report) -> dict[str, Any]:
    system = system_and_chaos[0]
    wait_steady(system)
    figures = phase_figures(device_load(system, PHASE_S))
    report.add("calm", figures)
    assert figures["failed"] == 0, figures
    return figures


@pytest.fixture
def device_srv_fault(system: System) -> Iterator[None]:
    """Whatever a test sets, device-srv has no fault after it."""
    yield
    drills.set_fault(system, "device-srv", None)


def victim(system: System) -> tuple[str, str]:
    (name, ip), *_ = sorted(drills.pod_ips(system, "device-srv").items())
    return name, ip


def test_a_slow_replica_keeps_caller_p99_within_1_5x_calm(
    system: System, calm: dict[str, Any], report: Report, device_srv_fault: None
) -> None:
    name, _ = victim(system)
    drills.set_fault(system, "device-srv", {"delay": "200ms", "pods": [name]})
    figures = phase_figures(device_load(system, PHASE_S))
    ratio = figures["p99_ms"] / calm["p99_ms"]
    report.add("slow_replica", {"pod": name, **figures, "p99_over_calm": round(ratio, 2)})
    assert figures["failed"] == 0, figures
    assert ratio <= 1.5, f"p99 {figures['p99_ms']} ms vs calm {calm['p99_ms']} ms"


def test_a_half_failing_replica_is_ejected_and_no_lookup_fails(
    system: System, calm: dict[str, Any], report: Report, device_srv_fault: None
) -> None:
    name, ip = victim(system)
    callers = drills.gateway_ips(system)
    load = device_lookups(system, PHASE_S)
    try:
        before = {caller: drills.device_attempts([caller]) for caller in callers}
        drills.set_fault(system, "device-srv", {"unavailable_share": 0.5, "pods": [name]})
        on = time.monotonic()
        ejected = drills.wait_ejected(callers, ip, on, EJECTION_BOUND_S)
        calls = {c: drills.device_attempts([c]) - before[c] for c in callers}
        time.sleep(max(on + PHASE_S - time.monotonic(), 0))  # the phase's length
    finally:
        requests = [r for r in load.stop() if r.operation in DEVICE_OPERATIONS]
    figures = phase_figures([r for r in requests if r.start >= on])
    # A caller ejects on a failure rate once it made EJECTION_CALLS calls to the replica
    # in the window (ejection.min_requests): one the NodePort gave little load may not.
    busy = {c for c, n in calls.items() if n >= 4 * EJECTION_CALLS}
    report.add(
        "half_failing_replica",
        {"pod": name, **figures, "ejected_after_s": ejected, "device_srv_calls": calls},
    )
    assert figures["failed"] == 0, figures
    assert ejected, f"no caller ejected {name} within {EJECTION_BOUND_S}s: {calls}"
    assert busy <= set(ejected), f"busy callers {busy} ejected only: {ejected}"


def _restarts(system: System) -> dict[str, int]:
    pods = system.node.core.list_namespaced_pod(NAMESPACE).items
    return {p.metadata.name: restart_count(p) for p in pods}


def _recovery_s(system: System, since: float, bound_s: float) -> float:
    """Seconds from `since` until ten lookups in a row answer 200 (polled)."""
    in_a_row = 0
    while in_a_row < 10 and time.monotonic() < since + bound_s:
        status = system.data.get("/data/device1").status_code
        in_a_row = in_a_row + 1 if status == 200 else 0
    return round(time.monotonic() - since, 2)


def test_data_srv_under_4x_its_capacity_keeps_its_goodput(
    system: System, calm: dict[str, Any], report: Report, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = [f"http://{ip}:8080" for ip in drills.pod_ips(system, "data-srv").values()]
    restarts = _restarts(system)
    monkeypatch.syspath_prepend(str(REPO_ROOT))  # the spawned process imports `generator`
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(time.sleep, 0).result()  # the process start is no part of a phase
        measured = pool.submit(generator.capacity, urls, CAPACITY_S).result()
        capacity = measured.statuses[200] / CAPACITY_S
        assert capacity > 0, measured.statuses
        rate = OVERLOAD_MULTIPLE * capacity
        offered = pool.submit(generator.flood, urls, rate, OVERLOAD_S).result()
    stopped = time.monotonic()
    recovery_s = _recovery_s(system, stopped, RECOVERY_BOUND_S)
    goodput = offered.statuses[200] / OVERLOAD_S
    accepted_p99_ms = percentile(offered.accepted_latencies_s, 0.99) * 1000
    figures = {
        "capacity_per_s": round(capacity, 1),
        "capacity_p99_ms": round(percentile(measured.accepted_latencies_s, 0.99) * 1000, 1),
        "offered_per_s": round(rate, 1),
        "sent": offered.sent,
        "statuses": {str(k): v for k, v in sorted(offered.statuses.items())},
        "late": offered.late,
        "goodput_per_s": round(goodput, 1),
        "goodput_over_capacity": round(goodput / capacity, 2),
        "accepted_p99_ms": round(accepted_p99_ms, 1),
        "recovery_s": recovery_s,
        "restarts": {k: v for k, v in _restarts(system).items() if v != restarts.get(k)},
    }
    report.add("overload_data_srv", figures)
    assert figures["restarts"] == {}, figures
    assert goodput >= 0.8 * capacity, json.dumps(figures)
    # Bounded: the accepted requests do not wait in a queue that grows with the overload.
    assert accepted_p99_ms <= 1000, json.dumps(figures)
    assert recovery_s < RECOVERY_BOUND_S, json.dumps(figures)


def test_device_srv_down_fails_fast_without_a_retry_storm(
    system: System, calm: dict[str, Any], report: Report, device_srv_fault: None
) -> None:
    callers = drills.gateway_ips(system)
    seconds = OUTAGE_S + RECOVERY_BOUND_S + 30  # more than the drill takes: stopped after
    load = device_lookups(system, seconds)
    try:
        started = time.monotonic()
        wait_for("the load under way", lambda: load.completed_since(started) >= 20, 30, 0.05)
        counted_from = time.monotonic()
        attempts_before = drills.device_attempts(callers)
        rejections_before = drills.breaker_rejections(callers)
        drills.set_fault(system, "device-srv", {"unavailable_share": 1.0})
        down = time.monotonic()
        time.sleep(OUTAGE_S)  # the outage's length, not a wait for a condition
        drills.set_fault(system, "device-srv", None)
        up = time.monotonic()
        attempts = drills.device_attempts(callers) - attempts_before
        rejections = drills.breaker_rejections(callers) - rejections_before
        counted_to = time.monotonic()
        # The lookups after the outage: long enough to see them all succeed again.
        time.sleep(RECOVERY_BOUND_S)
    finally:
        requests = [r for r in load.stop() if r.operation in DEVICE_OPERATIONS]
    # Attempts are counted from the first scrape to the last: so are the requests.
    counted = [r for r in requests if counted_from <= r.start and r.end <= counted_to]
    outage = [r for r in requests if down <= r.start and r.end <= up]
    last_failure = max((r.end for r in requests if not r.ok and r.start >= up), default=up)
    figures = phase_figures(outage)
    figures |= {
        "seconds": round(up - down, 1),
        "failed_p50_ms": round(
            percentile([(r.end - r.start) * 1000 for r in outage if not r.ok], 0.5), 1
        ),
        "requests_counted": len(counted),
        "attempts": attempts,
        "attempts_over_requests": round(attempts / max(len(counted), 1), 2),
        "breaker_rejections": rejections,
        "recovery_s": round(last_failure - up, 2),
        "requests_after": sum(r.start >= up for r in requests),
    }
    report.add("device_srv_down", figures)
    assert rejections > 0, f"the breaker never refused a call: {figures}"
    assert attempts <= 1.2 * len(counted), figures
    assert figures["recovery_s"] < RECOVERY_BOUND_S - 2, figures  # then 2 s without failure
    assert figures["failed_p99_ms"] < calm["ok_p50_ms"], figures


def test_the_drills_left_no_fault(system: System) -> None:
    """The next tests of the session (the soak) start on a system with no fault."""
    config = system.node.core.read_namespaced_config_map("device-srv", NAMESPACE)
    assert drills.DRILL not in config.data["config.yaml"]
    assert httpx.get(f"{system.data_url}/data/device1", timeout=10).status_code == 200
