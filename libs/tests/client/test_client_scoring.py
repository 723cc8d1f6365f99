"""The peak-EWMA score, with the time given by hand."""

from __future__ import annotations

import math
from datetime import timedelta

import grpc
import pytest

from micro.client.outcome import counts_as_failure
from micro.client.scoring import PeakEwma
from micro.config.model import BalancingConfig
from micro.errors import overloaded, rate_limited

CFG = BalancingConfig(latency_decay=timedelta(seconds=2), success_decay=timedelta(seconds=5))


def test_a_slower_answer_is_the_latency_at_once() -> None:
    load = PeakEwma(now=0.0)
    load.observe(0.010, False, 1.0, CFG)
    load.observe(0.200, False, 1.001, CFG)
    assert load.latency_s == 0.200


def test_a_faster_answer_moves_the_latency_by_the_time_since_the_last() -> None:
    load = PeakEwma(now=0.0)
    load.observe(0.200, False, 0.0, CFG)
    load.observe(0.010, False, 2.0, CFG)  # one time constant later
    keep = math.exp(-1.0)
    assert load.latency_s == pytest.approx(0.200 * keep + 0.010 * (1 - keep))


def test_a_fast_failure_does_not_make_an_endpoint_look_fast() -> None:
    load = PeakEwma(now=0.0)
    load.observe(0.100, False, 0.0, CFG)
    load.observe(0.001, True, 10.0, CFG)
    assert load.latency_s == 0.100
    assert load.success == pytest.approx(math.exp(-2.0))


def test_the_score_grows_with_calls_in_flight_and_failures() -> None:
    load = PeakEwma(now=0.0)
    load.observe(0.010, False, 0.0, CFG)
    assert load.score(0, CFG, 1.0) == pytest.approx(0.010)
    assert load.score(3, CFG, 1.0) == pytest.approx(0.040)
    for second in range(1, 100):
        load.observe(0.010, True, float(second), CFG)
    # No success left: the floor keeps the score finite.
    assert load.score(0, CFG, 1.0) == pytest.approx(0.010 / CFG.min_success_rate)


def test_before_its_first_answer_an_endpoint_is_scored_with_the_stand_in() -> None:
    load = PeakEwma(now=0.0)
    assert load.latency_s is None
    assert load.score(1, CFG, 0.005) == pytest.approx(0.010)


def error(code: grpc.StatusCode, trailers: tuple[tuple[str, bytes], ...] = ()) -> grpc.RpcError:
    metadata = grpc.aio.Metadata(*trailers)
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), metadata, "boom", None)


def test_what_counts_against_an_endpoint() -> None:
    assert counts_as_failure(error(grpc.StatusCode.UNAVAILABLE))
    assert counts_as_failure(error(grpc.StatusCode.DEADLINE_EXCEEDED))
    assert counts_as_failure(error(grpc.StatusCode.INTERNAL))
    assert counts_as_failure(error(grpc.StatusCode.UNKNOWN))
    assert not counts_as_failure(error(grpc.StatusCode.NOT_FOUND))
    assert not counts_as_failure(error(grpc.StatusCode.INVALID_ARGUMENT))
    shed = overloaded("busy", timedelta(milliseconds=50)).trailing_metadata()
    limited = rate_limited("slow down", timedelta(seconds=1)).trailing_metadata()
    assert counts_as_failure(error(grpc.StatusCode.RESOURCE_EXHAUSTED, shed))
    assert not counts_as_failure(error(grpc.StatusCode.RESOURCE_EXHAUSTED, limited))
