"""Soak under chaos: a steady mixed load for RELIABILITY_SECONDS while a pod is deleted,
a pod's process is killed, a Deployment rolls or the API server restarts, one action
every RELIABILITY_CHAOS_S; and the RSS and open descriptors of every process, sampled at
the start, before each action and at the end: growth from its first sample to its last."""

from __future__ import annotations

import random
import time

import pytest

from ..cluster_load import OPERATIONS, Load
from ..cluster_system import System
from . import procstats
from .chaos import KINDS, Chaos, ChaosEvent, wait_steady
from .conftest import CHAOS_INTERVAL_S, CLIENTS, SECONDS, TIMEOUT_S
from .report import Report, SoakFigures, action_of, phase_figures

pytestmark = pytest.mark.timeout(TIMEOUT_S)

# Generous bounds: they catch a leak (a descriptor or a buffer per request), not noise.
MAX_FD_GROWTH = 50
MAX_RSS_GROWTH_KIB = 256 * 1024
# At most this many requests per client and second of soak (the loop's own bound).
REQUESTS_PER_CLIENT_SECOND = 100


def chaos_schedule(rng: random.Random, count: int) -> list[str]:
    """Every kind once in a random order, then again: each shows up in a long enough run."""
    kinds: list[str] = []
    while len(kinds) < count:
        round_ = list(KINDS)
        rng.shuffle(round_)
        kinds.extend(round_)
    return kinds[:count]


def test_soak_under_chaos(system: System, chaos: Chaos, rng: random.Random, report: Report) -> None:
    wait_steady(system)
    samples = [procstats.sample(system)]
    limit = int(REQUESTS_PER_CLIENT_SECOND * SECONDS)
    load = Load(system, CLIENTS, duration_s=SECONDS * 3 + 60, limit=limit)
    began = time.monotonic()
    events: list[ChaosEvent] = []
    load.start()
    try:
        for kind in chaos_schedule(rng, max(int(SECONDS // CHAOS_INTERVAL_S), 0)):
            next_at = began + (len(events) + 1) * CHAOS_INTERVAL_S
            if next_at >= began + SECONDS:
                break
            time.sleep(max(next_at - time.monotonic(), 0))
            samples.append(procstats.sample(system))
            events.append(chaos.act(kind))
        time.sleep(max(began + SECONDS - time.monotonic(), 0))
    finally:
        requests = load.stop()
    samples.append(procstats.sample(system))

    figures = SoakFigures.of(requests, events)
    growth = procstats.growth(samples)
    report.add(
        "soak",
        {
            "seconds": round(time.monotonic() - began, 1),
            "clients": CLIENTS,
            "chaos": [
                {
                    "kind": e.kind,
                    "service": e.service,
                    "pod": e.pod,
                    "at_s": round(e.start - began, 1),
                    "recovery_s": round(e.recovered - e.start, 1),
                }
                for e in events
            ],
            "requests": figures.requests,
            "requests_total": len(requests),
            "failures": figures.failures,
            "by_action": figures.by_action,
            "unexpected_failures": [
                f"{r.operation} at {r.start - began:.1f}s: {r.error}" for r in figures.unexpected
            ],
            "latency_ms": figures.latency_ms,
            # Issue 16's comparison: the requests no action overlapped, and the others.
            "calm": phase_figures([r for r in requests if action_of(r, events) is None]),
            "under_chaos": phase_figures([r for r in requests if action_of(r, events)]),
            "resources": [g.as_dict() for g in growth],
            "processes_alive_whole_soak": sum(g.seconds >= SECONDS - 1 for g in growth),
        },
    )

    assert set(figures.requests) == set(OPERATIONS)
    assert figures.unexpected == [], "\n".join(
        f"{r.operation} at {r.start - began:.1f}s: {r.error}" for r in figures.unexpected[:20]
    )
    assert growth, "no process was sampled twice"
    for process in growth:
        assert process.fd_growth < MAX_FD_GROWTH, process
        assert process.rss_growth_kib < MAX_RSS_GROWTH_KIB, process
