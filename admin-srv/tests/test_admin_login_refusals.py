"""Rate-limit refusals remembered by admin-srv: a locked (user, client, address) triple is
refused without a call to the real user-srv until the lock ends, over HTTP and gRPC;
anyone else still reaches user-srv; the memory is bounded and its entries expire."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import grpc
import httpx
import pytest

from admin_srv.refusals import RateRefusals
from api.admin_srv.v1 import admin_pb2
from micro.errors import Exhausted, ServiceError, overloaded, rate_limited, unauthenticated
from user_srv.config import LoginLimitsConfig

from .conftest import Admin, Backends

LOGIN = "/admin/v1/login"
OWNER = {"userName": "thangn", "password": "123456"}
GUESS = {"userName": "thangn", "password": "wrong-guess"}
LOCKOUT = timedelta(seconds=2)


@pytest.fixture
def login_limits() -> LoginLimitsConfig:
    # A short lockout, so that a test sees one end; three guesses per unknown client.
    return LoginLimitsConfig(
        unknown_max_failures=3, address_max_failures=100, first_lockout=LOCKOUT, max_lockout=LOCKOUT
    )


async def _post(admin: Admin, body: dict[str, str]) -> httpx.Response:
    admin.http.cookies.clear()
    return await admin.http.post(LOGIN, json=body)


async def _lock_unknown_clients(admin: Admin) -> httpx.Response:
    """Guesses until user-srv refuses the account to unknown clients; that refusal."""
    statuses = [(await _post(admin, GUESS)).status_code for _ in range(3)]
    assert statuses == [401, 401, 401]
    refused = await _post(admin, GUESS)
    assert refused.status_code == 429, refused.text
    return refused


async def test_a_locked_triple_is_refused_without_a_user_srv_call(
    admin: Admin, backends: Backends
) -> None:
    first = await _lock_unknown_clients(admin)
    calls = backends.user_servicer.verify_calls

    again = [await _post(admin, body) for body in (GUESS, OWNER, GUESS)]
    with pytest.raises(grpc.aio.AioRpcError) as over_grpc:
        await admin.auth.Login(admin_pb2.LoginRequest(user_name="thangn", password="123456"))

    assert backends.user_servicer.verify_calls == calls
    assert [r.status_code for r in again] == [429] * 3
    assert all(r.json() == first.json() for r in again)
    assert all(1 <= int(r.headers["Retry-After"]) <= 2 for r in again)
    refused = ServiceError.from_rpc_error(over_grpc.value)
    assert refused.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.cause is Exhausted.RATE
    assert refused.retry_after is not None
    assert timedelta(0) < refused.retry_after <= LOCKOUT


async def test_anyone_else_still_reaches_user_srv(admin: Admin, backends: Backends) -> None:
    device = (await _post(admin, OWNER)).cookies["device_token"]
    await _lock_unknown_clients(admin)
    calls = backends.user_servicer.verify_calls

    admin.http.cookies.clear()
    known_device = await admin.http.post(
        LOGIN, json=OWNER, headers={"Cookie": f"device_token={device}"}
    )
    other_user = await _post(admin, {"userName": "root", "password": "rootpass"})

    assert known_device.status_code == 200, known_device.text
    assert other_user.status_code == 200, other_user.text
    assert backends.user_servicer.verify_calls == calls + 2


async def test_the_triple_logs_in_once_the_lock_ends(admin: Admin, backends: Backends) -> None:
    refused = await _lock_unknown_clients(admin)
    ends = time.monotonic() + int(refused.headers["Retry-After"])

    deadline = ends + 10
    while (answer := await _post(admin, OWNER)).status_code == 429:
        assert time.monotonic() < deadline, "still refused long after the lock ended"
        await asyncio.sleep(0.05)

    assert answer.status_code == 200, answer.text
    # Refused locally until the lock's end, then asked once: user-srv saw few calls.
    assert backends.user_servicer.verify_calls <= 4 + 2


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


KEY = ("alice", "", "192.0.2.1")


def _refused(refusals: RateRefusals, key: tuple[str, str, str]) -> ServiceError | None:
    try:
        refusals.check(key)
    except ServiceError as error:
        return error
    return None


def test_a_refusal_is_kept_for_its_wait_from_the_call_start_then_dropped() -> None:
    clock = Clock()
    refusals = RateRefusals(clock=clock)
    asked_at = clock.now
    clock.now += 0.5  # the call took this long
    refusals.remember(KEY, rate_limited("too many", timedelta(seconds=10)), asked_at)

    clock.now = asked_at + 9
    during = _refused(refusals, KEY)
    other = _refused(refusals, ("alice", "device-1", "192.0.2.1"))
    clock.now = asked_at + 10
    after = _refused(refusals, KEY)

    assert during is not None
    assert during.cause is Exhausted.RATE
    assert during.message == "too many"
    assert during.retry_after == timedelta(seconds=1)
    assert other is None
    assert after is None
    assert len(refusals) == 0


def test_only_rate_limit_refusals_are_kept() -> None:
    refusals = RateRefusals(clock=Clock())
    refusals.remember(KEY, overloaded("busy", timedelta(seconds=1)), 1000.0)
    refusals.remember(KEY, unauthenticated(None, "wrong user name or password"), 1000.0)

    assert len(refusals) == 0
    assert _refused(refusals, KEY) is None


def test_the_memory_is_bounded_least_recent_first_and_ended_ones_dropped() -> None:
    clock = Clock()
    refusals = RateRefusals(max_entries=3, clock=clock)
    long, short = timedelta(seconds=60), timedelta(seconds=1)
    for name, wait in (("short", short), ("a", long), ("b", long)):
        refusals.remember((name, "", ""), rate_limited("x", wait), clock.now)
    clock.now += 2
    refusals.remember(("c", "", ""), rate_limited("x", long), clock.now)
    # "short" ended: it made room, so "a" stays.
    kept_after_c = [k for k in ("short", "a", "b", "c") if _refused(refusals, (k, "", ""))]
    refusals.remember(("d", "", ""), rate_limited("x", long), clock.now)
    kept_after_d = [k for k in ("a", "b", "c", "d") if _refused(refusals, (k, "", ""))]

    assert kept_after_c == ["a", "b", "c"]
    assert kept_after_d == ["b", "c", "d"]
    assert len(refusals) == 3
