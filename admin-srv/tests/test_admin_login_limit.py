"""The failed-login limiter on its own, with a clock the test moves."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from admin_srv.config import LoginLimitConfig
from admin_srv.login_limit import FailedLoginLimiter, LoginThrottledError

CFG = LoginLimitConfig(
    max_failures_per_user=2,
    max_failures_per_address=3,
    window=timedelta(seconds=60),
    max_tracked_keys=100,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_user_is_throttled_until_the_window_passes() -> None:
    clock = Clock()
    limiter = FailedLoginLimiter(lambda: CFG, clock)
    limiter.record_failure("alice", "10.0.0.1")
    clock.now += 10
    limiter.record_failure("alice", "10.0.0.2")

    with pytest.raises(LoginThrottledError) as caught:
        limiter.check("alice", "10.0.0.3")
    assert caught.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert caught.value.retry_after_seconds == 50  # the first failure leaves the window in 50 s

    clock.now += 51
    limiter.check("alice", "10.0.0.3")


def test_address_is_throttled_across_user_names() -> None:
    limiter = FailedLoginLimiter(lambda: CFG, Clock())
    for name in ("a", "b", "c"):
        limiter.record_failure(name, "10.0.0.1")

    with pytest.raises(LoginThrottledError):
        limiter.check("d", "10.0.0.1")
    limiter.check("d", "10.0.0.2")


def test_success_clears_the_user_but_not_the_address() -> None:
    limiter = FailedLoginLimiter(lambda: CFG, Clock())
    limiter.record_failure("alice", "10.0.0.1")
    limiter.record_failure("alice", "10.0.0.1")
    limiter.clear_user("alice")
    limiter.check("alice", "10.0.0.9")

    limiter.record_failure("bob", "10.0.0.1")
    with pytest.raises(LoginThrottledError):
        limiter.check("carol", "10.0.0.1")


def test_tracked_keys_are_bounded() -> None:
    limiter = FailedLoginLimiter(lambda: CFG, Clock())
    for i in range(500):
        limiter.record_failure(f"user{i}", f"10.0.{i // 250}.{i % 250}")

    assert len(limiter._failures) <= CFG.max_tracked_keys
