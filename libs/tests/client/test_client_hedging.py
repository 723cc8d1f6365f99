"""micro.client.hedging: the latency tracker and the race of an attempt and its hedges,
driven by a manual clock and timer (no real waiting), so each step is deterministic."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from api.echo.v1 import echo_pb2_grpc
from micro.client.hedging import MIN_SAMPLES, WINDOW, Hedger, LatencyTracker, loop_timer
from micro.client.idempotency import no_side_effect_methods
from micro.config.model import HedgingConfig

METHOD = "/echo.v1.EchoService/Echo"
LIMIT_S = 5.0  # a bound on each wait for the race's next step, never reached when it works

CFG = HedgingConfig(
    percentile=95,
    min_delay=timedelta(milliseconds=10),
    fallback_delay=timedelta(milliseconds=100),
    max_hedges=1,
)


class Retryable(Exception):
    pass


class Final(Exception):
    pass


class ManualTime:
    """The clock and the hedge timer: `now` moves only when the test says so; each
    timer runs out at fire()."""

    def __init__(self) -> None:
        self.now = 0.0
        self.delays: list[float] = []
        self._timers: list[asyncio.Future[None]] = []
        self.armed = asyncio.Event()

    def clock(self) -> float:
        return self.now

    def timer(self, seconds: float) -> asyncio.Future[None]:
        self.delays.append(seconds)
        waker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._timers.append(waker)
        self.armed.set()
        return waker

    async def fire(self) -> None:
        """Run the hedge timer out (waiting for it to be set first)."""
        await asyncio.wait_for(self.armed.wait(), LIMIT_S)
        self.armed.clear()
        self._timers.pop(0).set_result(None)


class Attempt:
    def __init__(self, index: int) -> None:
        self.index = index
        self.answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.running = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def run(self) -> str:
        self.running.set()
        try:
            return await self.answer
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


class Attempts:
    """The race's attempts: attempt n answers when the test resolves attempts[n]; hedges
    while there are instances not tried yet and budget tokens."""

    def __init__(self, instances: int = 3, tokens: int = 10) -> None:
        self.instances = instances
        self.tokens = tokens
        self.started: list[Attempt] = []
        self.asked = 0
        self.was_asked = asyncio.Event()

    def start(self) -> Awaitable[str] | None:
        self.asked += 1
        self.was_asked.set()
        if len(self.started) == self.instances:
            return None
        if self.started:  # a hedge takes a token
            if self.tokens <= 0:
                return None
            self.tokens -= 1
        attempt = Attempt(len(self.started))
        self.started.append(attempt)
        return attempt.run()

    async def running(self, index: int) -> Attempt:
        while len(self.started) <= index:
            await asyncio.wait_for(self.was_asked.wait(), LIMIT_S)
            self.was_asked.clear()
        await asyncio.wait_for(self.started[index].running.wait(), LIMIT_S)
        return self.started[index]


def sample(name: str, service: str) -> float:
    return REGISTRY.get_sample_value(name, {"service": service}) or 0.0


def hedger(service: str, time: ManualTime) -> Hedger:
    return Hedger(service, clock=time.clock, timer=time.timer)


def race(hedger: Hedger, attempts: Attempts, cfg: HedgingConfig = CFG) -> asyncio.Task[str]:
    first = attempts.start()
    assert first is not None
    return asyncio.ensure_future(
        hedger.call(
            METHOD,
            first,
            attempts.start,
            cfg=cfg,
            retryable=lambda error: isinstance(error, Retryable),
        )
    )


def test_only_no_side_effects_methods_are_hedged() -> None:
    # Put is IDEMPOTENT: safe to repeat after a failure, not to run twice at once.
    assert no_side_effect_methods(echo_pb2_grpc.EchoServiceStub) == {METHOD}


# the latency tracker ----------------------------------------------------------------


def test_no_percentile_before_enough_answers_then_the_fallback_delay() -> None:
    tracker = LatencyTracker()
    for _ in range(MIN_SAMPLES - 1):
        tracker.record(0.5)
    assert tracker.percentile(95) is None
    assert tracker.delay_s(CFG) == pytest.approx(0.1)
    tracker.record(0.5)
    assert tracker.percentile(95) == 0.5
    assert tracker.delay_s(CFG) == 0.5


def test_the_percentile_is_the_nearest_rank_of_the_window() -> None:
    tracker = LatencyTracker(window=100, min_samples=1)
    for ms in range(1, 101):  # 1..100 ms, shuffled order does not matter
        tracker.record(((ms * 37) % 100 + 1) / 1000)
    assert tracker.percentile(95) == pytest.approx(0.095)
    assert tracker.percentile(50) == pytest.approx(0.050)


def test_the_window_keeps_only_recent_answers() -> None:
    tracker = LatencyTracker()
    for _ in range(WINDOW):
        tracker.record(1.0)
    for _ in range(WINDOW):
        tracker.record(0.02)
    assert len(tracker) == WINDOW
    assert tracker.percentile(95) == 0.02


def test_the_delay_never_goes_below_min_delay() -> None:
    tracker = LatencyTracker(min_samples=1)
    tracker.record(0.001)
    assert tracker.delay_s(CFG) == pytest.approx(0.01)


# the race ---------------------------------------------------------------------------


async def test_a_fast_first_answer_sends_no_hedge_and_is_recorded() -> None:
    time, attempts = ManualTime(), Attempts()
    call = race(hedger("go-micro.h-fast", time), attempts)
    first = await attempts.running(0)
    time.now = 0.004
    first.answer.set_result("first")
    assert await call == "first"
    assert len(attempts.started) == 1
    assert time.delays == [pytest.approx(0.1)]  # the fallback: nothing known yet
    assert sample("micro_client_hedges_sent_total", "go-micro.h-fast") == 0


async def test_a_slow_first_attempt_is_hedged_and_cancelled_when_the_hedge_wins() -> None:
    time, attempts = ManualTime(), Attempts()
    hedges = hedger("go-micro.h-slow", time)
    call = race(hedges, attempts)
    first = await attempts.running(0)
    time.now = 0.1
    await time.fire()
    hedge = await attempts.running(1)
    time.now = 0.103
    hedge.answer.set_result("hedge")
    assert await call == "hedge"
    assert first.cancelled.is_set()  # the loser was cancelled and awaited
    assert sample("micro_client_hedges_sent_total", "go-micro.h-slow") == 1
    assert sample("micro_client_hedges_won_total", "go-micro.h-slow") == 1
    assert len(hedges.tracker(METHOD)) == 1  # the hedge's own latency; no loser's
    for _ in range(MIN_SAMPLES):
        hedges.tracker(METHOD).record(0.003)
    assert hedges.tracker(METHOD).delay_s(CFG) == pytest.approx(0.01)  # min_delay


async def test_the_first_attempt_may_still_win_after_the_hedge_was_sent() -> None:
    time, attempts = ManualTime(), Attempts()
    call = race(hedger("go-micro.h-late", time), attempts)
    first = await attempts.running(0)
    await time.fire()
    hedge = await attempts.running(1)
    first.answer.set_result("first")
    assert await call == "first"
    assert hedge.cancelled.is_set()
    assert sample("micro_client_hedges_sent_total", "go-micro.h-late") == 1
    assert sample("micro_client_hedges_won_total", "go-micro.h-late") == 0


async def test_no_hedge_without_a_budget_token() -> None:
    time, attempts = ManualTime(), Attempts(tokens=0)
    call = race(hedger("go-micro.h-broke", time), attempts)
    first = await attempts.running(0)
    attempts.was_asked.clear()
    await time.fire()
    await asyncio.wait_for(attempts.was_asked.wait(), LIMIT_S)
    assert len(attempts.started) == 1
    first.answer.set_result("first")
    assert await call == "first"
    assert len(attempts.started) == 1
    assert sample("micro_client_hedges_sent_total", "go-micro.h-broke") == 0


async def test_no_hedge_without_another_instance() -> None:
    time, attempts = ManualTime(), Attempts(instances=1)
    call = race(hedger("go-micro.h-alone", time), attempts)
    first = await attempts.running(0)
    await time.fire()
    attempts.was_asked.clear()
    await asyncio.wait_for(attempts.was_asked.wait(), LIMIT_S)
    assert attempts.asked == 2
    assert time.delays == [pytest.approx(0.1)]  # no timer for a hedge never sent
    first.answer.set_result("first")
    assert await call == "first"
    assert sample("micro_client_hedges_sent_total", "go-micro.h-alone") == 0


async def test_a_retryable_failure_waits_for_the_other_attempt() -> None:
    time, attempts = ManualTime(), Attempts()
    call = race(hedger("go-micro.h-retry", time), attempts)
    first = await attempts.running(0)
    await time.fire()
    hedge = await attempts.running(1)
    first.answer.set_exception(Retryable("unavailable"))
    for _ in range(3):  # the race's turns: it sees the failure and keeps waiting
        await asyncio.sleep(0)
    assert not call.done()
    hedge.answer.set_result("hedge")
    assert await call == "hedge"


async def test_a_final_failure_is_the_answer_and_cancels_the_rest() -> None:
    time, attempts = ManualTime(), Attempts()
    call = race(hedger("go-micro.h-final", time), attempts)
    first = await attempts.running(0)
    await time.fire()
    hedge = await attempts.running(1)
    hedge.answer.set_exception(Final("not found"))
    with pytest.raises(Final):
        await call
    assert first.cancelled.is_set()


async def test_when_every_attempt_fails_retryably_the_last_failure_is_raised() -> None:
    time, attempts = ManualTime(), Attempts()
    call = race(hedger("go-micro.h-fail", time), attempts)
    first = await attempts.running(0)
    await time.fire()
    hedge = await attempts.running(1)
    first.answer.set_exception(Retryable("first"))
    hedge.answer.set_exception(Retryable("hedge"))
    with pytest.raises(Retryable):
        await call


async def test_hedges_are_bounded_by_max_hedges() -> None:
    time, attempts = ManualTime(), Attempts(instances=5)
    cfg = CFG.model_copy(update={"max_hedges": 2})
    call = race(hedger("go-micro.h-max", time), attempts, cfg=cfg)
    await attempts.running(0)
    await time.fire()
    await attempts.running(1)
    await time.fire()
    third = await attempts.running(2)
    assert len(time.delays) == 2  # no third timer
    third.answer.set_result("third")
    assert await call == "third"
    assert all(a.cancelled.is_set() for a in attempts.started[:2])
    assert sample("micro_client_hedges_sent_total", "go-micro.h-max") == 2


async def test_the_loop_timer_runs_out() -> None:
    timer = loop_timer(0.001)
    await asyncio.wait_for(timer, LIMIT_S)
    assert timer.result() is None


async def test_a_cancelled_call_cancels_every_attempt() -> None:
    time, attempts = ManualTime(), Attempts()
    call = race(hedger("go-micro.h-gone", time), attempts)
    await attempts.running(0)
    await time.fire()
    await attempts.running(1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert all(a.cancelled.is_set() for a in attempts.started)
