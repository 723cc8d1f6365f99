"""The adaptive concurrency limit (micro.transport.limit) on a hand-driven clock."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from micro.config.model import SheddingConfig
from micro.transport.limit import SPELL_QUIET_S, ConcurrencyLimiter, Gradient2, Ticket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, **settings: Any) -> ConcurrencyLimiter:
    """A limiter whose every call is a window of its own (unless `settings` say else)."""
    windows: dict[str, Any] = {"window": timedelta(microseconds=1), "window_calls": 1}
    return ConcurrencyLimiter(SheddingConfig(**(windows | settings)), transport="test", clock=clock)


def run_calls(limits: ConcurrencyLimiter, clock: Clock, *, at_once: int, rtt: float) -> None:
    """`at_once` calls admitted together, all taking `rtt`."""
    tickets = [limits.admit() for _ in range(at_once)]
    clock.now += rtt
    for ticket in tickets:
        assert ticket is not None
        limits.done(ticket)


def test_calls_past_the_limit_are_shed_and_admitted_again_once_one_ends() -> None:
    clock = Clock()
    limits = limiter(clock, initial_limit=3, min_limit=3, max_limit=3)
    tickets = [limits.admit() for _ in range(3)]
    assert all(isinstance(t, Ticket) for t in tickets)
    assert limits.admit() is None
    assert (limits.in_flight, limits.shed) == (3, 1)
    clock.now += 0.01
    limits.done(tickets[0])  # type: ignore[arg-type]
    assert limits.admit() is not None
    assert limits.shed == 1  # a shed call a moment ago: the spell goes on
    clock.now += SPELL_QUIET_S
    limits.done(tickets[1])  # type: ignore[arg-type]
    assert limits.admit() is not None
    assert limits.shed == 0  # the spell of shedding is over


def test_steady_latency_under_load_grows_the_limit_up_to_the_max() -> None:
    clock = Clock()
    limits = limiter(clock, initial_limit=10, min_limit=5, max_limit=40)
    for _ in range(200):
        run_calls(limits, clock, at_once=limits.limit, rtt=0.01)
    assert limits.limit == 40


def test_rising_latency_shrinks_the_limit_and_it_recovers_when_latency_does() -> None:
    clock = Clock()
    limits = limiter(clock, initial_limit=40, min_limit=5, max_limit=40)
    for _ in range(20):  # the long-term average learns 10 ms
        run_calls(limits, clock, at_once=40, rtt=0.01)
    assert limits.limit == 40
    for _ in range(20):  # a queue builds: each call takes five times as long
        run_calls(limits, clock, at_once=limits.limit, rtt=0.05)
    assert 5 <= limits.limit < 15
    for _ in range(60):  # the load goes: latency back to normal
        run_calls(limits, clock, at_once=limits.limit, rtt=0.01)
    assert limits.limit == 40


def test_a_server_far_below_its_limit_keeps_the_limit() -> None:
    """Few calls in flight say nothing about capacity, however slow they are."""
    clock = Clock()
    limits = limiter(clock, initial_limit=20, min_limit=5, max_limit=40)
    for _ in range(20):
        run_calls(limits, clock, at_once=2, rtt=0.01)
    for _ in range(20):
        run_calls(limits, clock, at_once=2, rtt=1.0)
    assert limits.limit == 20


def test_one_sample_cuts_the_limit_by_at_most_half_smoothed() -> None:
    algorithm = Gradient2(SheddingConfig(initial_limit=100, min_limit=1, max_limit=100))
    for _ in range(10):
        algorithm.sample(0.01, in_flight=100)
    limit = algorithm.sample(10.0, in_flight=100)
    # gradient floors at 0.5: 100 * 0.8 + (100 * 0.5 + 4) * 0.2
    assert limit == pytest.approx(90.8)


def test_a_config_change_clamps_the_limit_and_off_admits_everything() -> None:
    clock = Clock()
    limits = limiter(clock, initial_limit=20, min_limit=10, max_limit=40)
    limits.update(SheddingConfig(min_limit=2, max_limit=4))
    assert limits.limit == 4
    tickets = [limits.admit() for _ in range(4)]
    assert limits.admit() is None
    limits.update(SheddingConfig(enabled=False, min_limit=2, max_limit=4))
    assert all(limits.admit() is not None for _ in range(10))
    assert limits.in_flight == 14
    assert all(t is not None for t in tickets)


def test_a_call_that_is_no_sample_frees_its_slot_and_leaves_the_limit() -> None:
    """A long poll ends when the poll does: its length says nothing of the server."""
    clock = Clock()
    limits = limiter(clock, initial_limit=4, min_limit=1, max_limit=4)
    for _ in range(10):
        run_calls(limits, clock, at_once=4, rtt=0.01)
    long_poll = limits.admit()
    assert long_poll is not None
    clock.now += 30.0
    limits.done(long_poll, sample=False)
    assert (limits.limit, limits.in_flight) == (4, 0)
    assert limits.retry_after_s() == pytest.approx(0.01)


def test_a_window_of_calls_gives_one_sample_their_mean_latency() -> None:
    clock = Clock()
    limits = limiter(
        clock, initial_limit=40, min_limit=5, max_limit=40, window=timedelta(seconds=1)
    )
    for _ in range(20):  # the long-term average learns 10 ms, a window a second
        run_calls(limits, clock, at_once=40, rtt=0.01)
        clock.now += 1.0
    assert limits.limit == 40
    # One slow call among a window's fast ones: their mean is within the tolerance.
    slow = limits.admit()
    clock.now += 0.1
    limits.done(slow)  # type: ignore[arg-type]
    for _ in range(3):
        run_calls(limits, clock, at_once=40, rtt=0.01)
    clock.now += 1.0
    run_calls(limits, clock, at_once=40, rtt=0.01)
    assert limits.limit == 40
    # A window whose calls were all slow is one sample: the limit shrinks once.
    for _ in range(3):
        run_calls(limits, clock, at_once=40, rtt=0.05)
    assert limits.limit == 40  # the window is not over yet
    clock.now += 1.0
    run_calls(limits, clock, at_once=40, rtt=0.05)
    assert 30 <= limits.limit < 40


def test_min_above_max_is_refused() -> None:
    with pytest.raises(ValueError, match="min_limit 30 is above max_limit 20"):
        SheddingConfig(min_limit=30, max_limit=20)


def test_one_log_line_when_shedding_starts_and_one_when_it_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    limits = limiter(clock, initial_limit=1, min_limit=1, max_limit=1)
    with caplog.at_level(logging.INFO, logger="micro.shedding"):
        ticket = limits.admit()
        for _ in range(5):
            assert limits.admit() is None
        assert ticket is not None
        # Flapping at the edge: admitted at once, shed again; still one spell.
        limits.done(ticket)
        flap = limits.admit()
        assert flap is not None
        assert limits.admit() is None
        limits.done(flap)
        clock.now += SPELL_QUIET_S
        assert limits.admit() is not None
    messages = [r.getMessage() for r in caplog.records if r.name == "micro.shedding"]
    assert messages == [
        "test shedding load: 1 calls in flight reached the limit",
        "test no longer shedding: 6 calls were shed",
    ]


def test_retry_after_is_the_long_term_latency() -> None:
    clock = Clock()
    limits = limiter(clock)
    for _ in range(10):
        run_calls(limits, clock, at_once=1, rtt=0.2)
    assert limits.retry_after_s() == pytest.approx(0.2)
