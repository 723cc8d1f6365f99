"""Login budgets held in the database, over user-srv's real gRPC server, on SQLite and
PostgreSQL: attempts in flight count, replicas share the count, lockouts escalate, a known
device keeps its own budget, a busy hasher sheds instead of queueing, and a keyed attempt
(a retry of one login attempt) counts once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.user_srv.v1 import user_pb2, user_pb2_grpc
from micro.client.idempotency import IDEMPOTENCY_KEY_METADATA
from micro.errors import ServiceError
from micro.idempotency import IdempotencyConfig, OutcomeStore
from micro.testing.fixtures import ServeGrpc
from user_srv.attempts import LoginBudgets, lockout, login_budgets
from user_srv.config import Argon2Config, LoginLimitsConfig
from user_srv.grpc_api import UserServicer
from user_srv.passwords import Argon2PasswordHasher
from user_srv.repository import SqlUserRepository
from user_srv.usecases import UserUseCases

if TYPE_CHECKING:
    from api.user_srv.v1.user_pb2_grpc import UserServiceAsyncStub

PASSWORD = "right-password"
WRONG = "wrong-password"
# Cheap hashes, and slots enough that only the budgets limit the checks.
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
ROOMY_ARGON2 = Argon2Config(time_cost=1, memory_kib=1024, max_concurrency=16, max_waiting=16)


class CountingHasher(Argon2PasswordHasher):
    """The real hasher, counting its argon2 verifications; `gate`, when set, holds every
    verification in its worker thread until the test opens it."""

    def __init__(self, cfg: Argon2Config) -> None:
        super().__init__(cfg)
        self.verifications = 0
        self.started = threading.Semaphore(0)
        self.gate: threading.Event | None = None

    def _check(self, password_hash: str, password: str) -> bool:
        self.verifications += 1
        self.started.release()
        if self.gate is not None:
            self.gate.wait(timeout=10)
        return super()._check(password_hash, password)


class Clock:
    def __init__(self) -> None:
        # Whole seconds, so that lockout arithmetic in the tests is exact.
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


class UserSrv:
    """One user-srv replica: its own hasher and use cases on the shared database."""

    def __init__(
        self,
        engine: AsyncEngine,
        limits: Callable[[], LoginLimitsConfig],
        clock: Clock,
        argon2: Argon2Config = ROOMY_ARGON2,
    ) -> None:
        self.hasher = CountingHasher(argon2)
        self.budgets = LoginBudgets(engine, limits, clock)
        self.usecases = UserUseCases(SqlUserRepository(engine), self.hasher, self.budgets)
        self.outcomes = OutcomeStore(engine, IdempotencyConfig)

    async def serve(self, serve_grpc: ServeGrpc) -> UserServiceAsyncStub:
        channel = await serve_grpc(
            user_pb2_grpc.add_UserServiceServicer_to_server,
            UserServicer(self.usecases, self.outcomes),
        )
        return user_pb2_grpc.UserServiceStub(channel)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limits() -> dict[str, Any]:
    """The live login_limits a test may change while the replicas run."""
    return {"max_in_flight": 10}


@pytest.fixture
async def replicas(any_engine: AsyncEngine, limits: dict[str, Any], clock: Clock) -> Any:
    made: list[UserSrv] = []

    def replica() -> UserSrv:
        srv = UserSrv(any_engine, lambda: LoginLimitsConfig(**limits), clock)
        made.append(srv)
        return srv

    first = replica()
    await first.usecases.create_user("alice", PASSWORD)
    await first.usecases.create_user("bob", PASSWORD)
    yield replica
    for srv in made:
        srv.hasher.close()


def _verify(
    user: str = "alice", password: str = WRONG, key: str = "", address: str = ""
) -> user_pb2.VerifyPasswordRequest:
    return user_pb2.VerifyPasswordRequest(
        user_name=user, password=password, client_key=key, client_address=address
    )


async def _outcome(stub: UserServiceAsyncStub, request: user_pb2.VerifyPasswordRequest) -> Any:
    """OK, or the ServiceError the call failed with (code, cause and retry-after)."""
    try:
        await stub.VerifyPassword(request)
    except grpc.aio.AioRpcError as error:
        return ServiceError.from_rpc_error(error)
    return grpc.StatusCode.OK


async def _first_done(
    tasks: list[asyncio.Task[Any]], count: int, within: float
) -> set[asyncio.Task[Any]]:
    """The first `count` tasks to finish (fewer if `within` seconds pass first)."""
    done: set[asyncio.Task[Any]] = set()
    deadline = time.monotonic() + within
    while len(done) < count:
        left = deadline - time.monotonic()
        finished, _ = await asyncio.wait(
            set(tasks) - done, timeout=max(0, left), return_when=asyncio.FIRST_COMPLETED
        )
        if not finished:
            break
        done |= finished
    return done


def _code(outcome: Any) -> grpc.StatusCode:
    return outcome if isinstance(outcome, grpc.StatusCode) else outcome.code


def _codes(outcomes: list[Any]) -> list[grpc.StatusCode]:
    return [_code(o) for o in outcomes]


async def test_ten_concurrent_wrong_passwords_with_limit_five_get_five_checks(
    replicas: Any, serve_grpc: ServeGrpc
) -> None:
    srv = replicas()
    stub = await srv.serve(serve_grpc)

    outcomes = await asyncio.gather(*(_outcome(stub, _verify()) for _ in range(10)))

    codes = _codes(outcomes)
    assert srv.hasher.verifications <= 5
    assert codes.count(grpc.StatusCode.UNAUTHENTICATED) == srv.hasher.verifications
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 10 - srv.hasher.verifications
    limited = [o for o in outcomes if getattr(o, "code", None) is RESOURCE_EXHAUSTED]
    assert all(o.retry_after is not None for o in limited)
    # The budget is used up: even the right password waits out the lockout.
    assert _codes([await _outcome(stub, _verify(password=PASSWORD))]) == [
        grpc.StatusCode.RESOURCE_EXHAUSTED
    ]


async def test_checks_in_flight_use_the_budget_across_replicas(
    replicas: Any, serve_grpc: ServeGrpc
) -> None:
    one, two = replicas(), replicas()
    stubs = [await one.serve(serve_grpc), await two.serve(serve_grpc)]
    gate = threading.Event()
    one.hasher.gate = two.hasher.gate = gate

    calls = [asyncio.create_task(_outcome(stubs[i % 2], _verify())) for i in range(10)]
    # With five checks held, the other five are refused at once, before any argon2 work.
    refused_while_held = await _first_done(calls, 5, within=10)
    checking = one.hasher.verifications + two.hasher.verifications
    gate.set()
    outcomes = await asyncio.gather(*calls)

    checks = one.hasher.verifications + two.hasher.verifications
    assert len(refused_while_held) == 5
    assert all(_code(t.result()) is RESOURCE_EXHAUSTED for t in refused_while_held)
    assert checks == 5
    assert checking <= 5
    assert _codes(outcomes).count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 5


async def test_per_key_in_flight_cap_refuses_a_second_check(
    replicas: Any, serve_grpc: ServeGrpc, limits: dict[str, Any]
) -> None:
    limits["max_in_flight"] = 1
    srv = replicas()
    stub = await srv.serve(serve_grpc)
    srv.hasher.gate = threading.Event()

    first = asyncio.create_task(_outcome(stub, _verify()))
    await asyncio.to_thread(srv.hasher.started.acquire, True, 10)
    second = await _outcome(stub, _verify())
    other_user = asyncio.create_task(_outcome(stub, _verify(user="bob", password=PASSWORD)))
    await asyncio.to_thread(srv.hasher.started.acquire, True, 10)
    srv.hasher.gate.set()

    assert second.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert second.cause.value == "RATE_LIMITED"
    assert _code(await first) is grpc.StatusCode.UNAUTHENTICATED
    assert _code(await other_user) is grpc.StatusCode.OK


async def test_lockouts_double_up_to_the_cap_and_success_resets(
    replicas: Any, serve_grpc: ServeGrpc, clock: Clock, limits: dict[str, Any]
) -> None:
    limits.update(unknown_max_failures=2, first_lockout="60s", max_lockout="200s")
    stub = await replicas().serve(serve_grpc)
    waits = []
    for _ in range(3):
        assert (
            _codes([await _outcome(stub, _verify()) for _ in range(2)])
            == [grpc.StatusCode.UNAUTHENTICATED] * 2
        )
        refused = await _outcome(stub, _verify(password=PASSWORD))
        waits.append(refused.retry_after)
        clock.now += refused.retry_after.total_seconds()

    assert waits == [timedelta(seconds=60), timedelta(seconds=120), timedelta(seconds=200)]
    assert _code(await _outcome(stub, _verify(password=PASSWORD))) is grpc.StatusCode.OK
    # The success reset the escalation: the next lockout is the first one again.
    await _outcome(stub, _verify())
    await _outcome(stub, _verify())
    refused = await _outcome(stub, _verify(password=PASSWORD))
    assert refused.retry_after == timedelta(seconds=60)


def test_lockout_formula() -> None:
    cfg = LoginLimitsConfig(first_lockout=timedelta(minutes=1), max_lockout=timedelta(hours=1))
    assert [lockout(cfg, n).total_seconds() for n in range(8)] == [
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]
    assert lockout(cfg, 10_000) == timedelta(hours=1)


async def test_a_known_device_logs_in_while_unknown_clients_are_locked_out(
    replicas: Any, serve_grpc: ServeGrpc
) -> None:
    stub = await replicas().serve(serve_grpc)
    attack = [await _outcome(stub, _verify(address="192.0.2.1")) for _ in range(6)]

    owner_unknown = await _outcome(stub, _verify(password=PASSWORD, address="192.0.2.1"))
    owner_device = await _outcome(
        stub, _verify(password=PASSWORD, key="dev-1", address="192.0.2.1")
    )

    assert _codes(attack)[-1] is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert owner_unknown.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _code(owner_device) is grpc.StatusCode.OK


async def test_a_device_key_has_its_own_small_budget(
    replicas: Any, serve_grpc: ServeGrpc, limits: dict[str, Any]
) -> None:
    limits["device_max_failures"] = 2
    stub = await replicas().serve(serve_grpc)

    guesses = [await _outcome(stub, _verify(key="dev-1")) for _ in range(3)]
    other_device = await _outcome(stub, _verify(password=PASSWORD, key="dev-2"))
    unknown = await _outcome(stub, _verify(password=PASSWORD))

    assert _codes(guesses) == [
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ]
    assert _code(other_device) is grpc.StatusCode.OK
    assert _code(unknown) is grpc.StatusCode.OK


async def test_an_address_is_budgeted_across_accounts(
    replicas: Any, serve_grpc: ServeGrpc, limits: dict[str, Any]
) -> None:
    limits["address_max_failures"] = 3
    stub = await replicas().serve(serve_grpc)
    names = ["alice", "bob", "ghost-1", "ghost-2"]

    outcomes = [await _outcome(stub, _verify(user=n, address="2001:db8::1")) for n in names]
    # The same address in another spelling is the same key.
    long_form = await _outcome(stub, _verify(user="ghost-3", address="2001:0db8:0:0:0:0:0:1"))
    elsewhere = await _outcome(stub, _verify(user="ghost-3", address="2001:db8::2"))

    assert _codes(outcomes) == [grpc.StatusCode.UNAUTHENTICATED] * 3 + [
        grpc.StatusCode.RESOURCE_EXHAUSTED
    ]
    assert long_form.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert elsewhere.code is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("key", "address", "field"),
    [
        ("dev 1", "", "clientKey"),
        ("x" * 65, "", "clientKey"),
        ("", "10.0.0.300", "clientAddress"),
        ("", "fe80::1%eth0", "clientAddress"),
        ("", "a" * 1000, "clientAddress"),
    ],
)
async def test_bad_client_key_or_address_is_invalid_argument(
    replicas: Any, serve_grpc: ServeGrpc, key: str, address: str, field: str
) -> None:
    srv = replicas()
    stub = await srv.serve(serve_grpc)

    outcome = await _outcome(stub, _verify(key=key, address=address))

    assert outcome.code is grpc.StatusCode.INVALID_ARGUMENT
    assert outcome.field == field
    assert srv.hasher.verifications == 0


async def test_a_burst_is_shed_at_once_and_other_users_still_log_in(
    any_engine: AsyncEngine, serve_grpc: ServeGrpc, clock: Clock
) -> None:
    # One slot and no queue at all: the slot is busy or free.
    argon2 = Argon2Config(time_cost=1, memory_kib=1024, max_concurrency=1, max_waiting=0)
    srv = UserSrv(any_engine, lambda: LoginLimitsConfig(max_in_flight=1), clock, argon2)
    try:
        await srv.usecases.create_user("carol", PASSWORD)
        await srv.usecases.create_user("dave", PASSWORD)
        stub = await srv.serve(serve_grpc)
        srv.hasher.gate = threading.Event()
        holder = asyncio.create_task(_outcome(stub, _verify(user="carol")))
        await asyncio.to_thread(srv.hasher.started.acquire, True, 10)

        started = time.monotonic()
        burst = await asyncio.gather(
            *(_outcome(stub, _verify(user=f"ghost-{i}")) for i in range(8))
        )
        shed_in = time.monotonic() - started
        srv.hasher.gate.set()
        await holder
        srv.hasher.gate = None
        after = await _outcome(stub, _verify(user="dave", password=PASSWORD))
        # A shed attempt costs no failure: the same client may try again at once.
        again = await _outcome(stub, _verify(user="ghost-0", password=WRONG))
    finally:
        srv.hasher.close()

    assert all(o.code is grpc.StatusCode.RESOURCE_EXHAUSTED for o in burst)
    assert all(o.cause.value == "OVERLOADED" for o in burst)
    assert shed_in < 5, "the burst waited for the busy slot instead of being shed"
    assert _code(after) is grpc.StatusCode.OK
    assert _code(again) is grpc.StatusCode.UNAUTHENTICATED


async def test_idle_keys_are_forgotten_locked_ones_kept(
    replicas: Any, clock: Clock, limits: dict[str, Any]
) -> None:
    limits.update(unknown_max_failures=1, forget_after="1h", max_lockout="2h")
    srv = replicas()
    with pytest.raises(ServiceError):
        await srv.usecases.verify_password("alice", WRONG)  # locked for a minute
    limits["first_lockout"] = "2h"
    with pytest.raises(ServiceError):
        await srv.usecases.verify_password("bob", WRONG)  # locked for two hours

    start = clock.now
    clock.now = start + 1800
    assert await srv.budgets.forget_idle() == 0  # neither idle for an hour yet
    clock.now = start + 3600 + 60
    assert await srv.budgets.forget_idle() == 1  # alice's; bob's lockout still runs
    clock.now = start + 2 * 3600 + 60
    assert await srv.budgets.forget_idle() == 1


async def test_a_cancelled_check_keeps_its_slot_until_its_hash_ends() -> None:
    hasher = CountingHasher(
        Argon2Config(time_cost=1, memory_kib=1024, max_concurrency=1, max_waiting=0)
    )
    hasher.gate = threading.Event()
    try:
        stored = await hasher.hash(PASSWORD)
        first = asyncio.create_task(hasher.verify(stored, WRONG))
        await asyncio.to_thread(hasher.started.acquire, True, 10)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        # The cancelled caller's hash still runs: a new one is shed, not queued behind it.
        with pytest.raises(ServiceError) as shed:
            await hasher.verify(stored, PASSWORD)
        hasher.gate.set()
        freed = await _eventually(lambda: hasher.verify(stored, PASSWORD))
    finally:
        hasher.gate.set()
        hasher.close()

    assert shed.value.code is RESOURCE_EXHAUSTED
    assert freed is True


async def _eventually(call: Callable[[], Any], within: float = 10) -> Any:
    """call() once it stops being shed (the slot frees as the worker finishes)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await call()
        except ServiceError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.01)


async def test_one_address_is_not_capped_in_flight(
    replicas: Any, serve_grpc: ServeGrpc, limits: dict[str, Any]
) -> None:
    limits["max_in_flight"] = 1
    srv = replicas()
    stub = await srv.serve(serve_grpc)
    srv.hasher.gate = threading.Event()

    calls = [
        asyncio.create_task(_outcome(stub, _verify(user=u, address="198.51.100.7")))
        for u in ("alice", "bob")
    ]
    # Both checks run at once: two users behind one NAT are not serialised.
    both_started = [await asyncio.to_thread(srv.hasher.started.acquire, True, 10) for _ in calls]
    srv.hasher.gate.set()

    assert both_started == [True, True]
    assert _codes(list(await asyncio.gather(*calls))) == [grpc.StatusCode.UNAUTHENTICATED] * 2


def _count_writes(engine: AsyncEngine) -> list[str]:
    """The INSERT and UPDATE statements the engine runs from now on."""
    writes: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            writes.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    return writes


async def test_a_locked_key_is_refused_without_a_write(
    replicas: Any, serve_grpc: ServeGrpc, any_engine: AsyncEngine, limits: dict[str, Any]
) -> None:
    limits.update(unknown_max_failures=2, first_lockout="60s")
    srv = replicas()
    stub = await srv.serve(serve_grpc)
    assert (
        _codes([await _outcome(stub, _verify()) for _ in range(2)])
        == [grpc.StatusCode.UNAUTHENTICATED] * 2
    )
    writes = _count_writes(any_engine)

    refused = [await _outcome(stub, _verify(password=p)) for p in (WRONG, PASSWORD, WRONG)]

    assert [o.code for o in refused] == [RESOURCE_EXHAUSTED] * 3
    assert all(o.retry_after == timedelta(seconds=60) for o in refused)
    assert writes == []
    assert srv.hasher.verifications == 2


async def test_a_check_its_caller_cancels_frees_its_hold_at_once(
    replicas: Any, serve_grpc: ServeGrpc, limits: dict[str, Any]
) -> None:
    limits["max_in_flight"] = 1
    srv = replicas()
    stub = await srv.serve(serve_grpc)
    srv.hasher.gate = threading.Event()
    try:
        call = stub.VerifyPassword(_verify())
        assert await asyncio.to_thread(srv.hasher.started.acquire, True, 10)
        call.cancel()
        # The hash still runs (gated), but its caller is gone: the key takes a new check.
        retried = asyncio.create_task(_eventually_checked(stub, _verify(password=PASSWORD)))
        started_again = await asyncio.to_thread(srv.hasher.started.acquire, True, 10)
    finally:
        srv.hasher.gate.set()

    assert started_again
    assert _code(await retried) is grpc.StatusCode.OK


async def _eventually_checked(
    stub: UserServiceAsyncStub, request: user_pb2.VerifyPasswordRequest, within: float = 10
) -> Any:
    """The outcome of the first attempt not refused while the cancelled one is let go."""
    deadline = time.monotonic() + within
    while True:
        outcome = await _outcome(stub, request)
        if _code(outcome) is not RESOURCE_EXHAUSTED or time.monotonic() > deadline:
            return outcome
        await asyncio.sleep(0.01)


async def test_a_check_cut_by_its_deadline_frees_its_hold_at_once(
    replicas: Any, serve_grpc: ServeGrpc, limits: dict[str, Any]
) -> None:
    limits["max_in_flight"] = 1
    srv = replicas()
    stub = await srv.serve(serve_grpc)
    srv.hasher.gate = threading.Event()
    try:
        with pytest.raises(grpc.aio.AioRpcError) as cut:
            await stub.VerifyPassword(_verify(), timeout=0.5)
        # The hash still runs (gated), but its caller is gone: the key takes a new check.
        retried = asyncio.create_task(_eventually_checked(stub, _verify(password=PASSWORD)))
        started_again = [
            await asyncio.to_thread(srv.hasher.started.acquire, True, 10) for _ in range(2)
        ]
    finally:
        srv.hasher.gate.set()

    assert cut.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert started_again == [True, True]
    assert _code(await retried) is grpc.StatusCode.OK


# A keyed VerifyPassword (a retry of one login attempt) is counted once, also when its
# attempts run at once; a key never stands in for the password.
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


async def keyed(
    stub: UserServiceAsyncStub, request: user_pb2.VerifyPasswordRequest, key: str
) -> Any:
    try:
        await stub.VerifyPassword(request, metadata=((IDEMPOTENCY_KEY_METADATA, key),))
    except grpc.aio.AioRpcError as error:
        return ServiceError.from_rpc_error(error).code
    return grpc.StatusCode.OK


async def failures(engine: AsyncEngine, key: str = "acct:alice") -> int:
    t = login_budgets.c
    async with engine.connect() as conn:
        row = (await conn.execute(select(t.failures).where(t.key == key))).first()
    return 0 if row is None else int(row.failures)


async def test_a_repeated_keyed_wrong_password_counts_once(
    replicas: Any, serve_grpc: ServeGrpc, any_engine: AsyncEngine
) -> None:
    srv = replicas()
    stub = await srv.serve(serve_grpc)
    answers = [await keyed(stub, _verify(), "attempt-1") for _ in range(4)]
    assert answers == [UNAUTHENTICATED] * 4
    assert srv.hasher.verifications == 1  # the repeats were answered without a check
    assert await failures(any_engine) == 1
    # A different attempt (a new key) counts as one more.
    assert await keyed(stub, _verify(), "attempt-2") is UNAUTHENTICATED
    assert await failures(any_engine) == 2


async def test_keyed_attempts_at_once_count_once(
    replicas: Any, serve_grpc: ServeGrpc, any_engine: AsyncEngine, limits: dict[str, Any]
) -> None:
    limits["max_in_flight"] = 4
    srv = replicas()
    stub = await srv.serve(serve_grpc)
    srv.hasher.gate = threading.Event()
    try:
        calls = [asyncio.create_task(keyed(stub, _verify(), "attempt-1")) for _ in range(3)]
        for _ in calls:  # all three are checking at once before any settles
            assert await asyncio.to_thread(srv.hasher.started.acquire, True, 10)
    finally:
        srv.hasher.gate.set()
    assert await asyncio.gather(*calls) == [UNAUTHENTICATED] * 3
    assert await failures(any_engine) == 1


async def test_a_key_never_stands_in_for_the_password(
    replicas: Any, serve_grpc: ServeGrpc, any_engine: AsyncEngine
) -> None:
    srv = replicas()
    stub = await srv.serve(serve_grpc)
    assert await keyed(stub, _verify(password=PASSWORD), "attempt-1") is grpc.StatusCode.OK
    # The same key with a wrong password: checked and counted, not the success replayed.
    assert await keyed(stub, _verify(), "attempt-1") is UNAUTHENTICATED
    assert await failures(any_engine) == 1
    # A repeat of a wrong password stays that failure, even with the right one.
    assert await keyed(stub, _verify(), "attempt-2") is UNAUTHENTICATED
    assert await keyed(stub, _verify(password=PASSWORD), "attempt-2") is UNAUTHENTICATED
    assert await failures(any_engine) == 2
    assert _code(await keyed(stub, _verify(user="bob"), "attempt-2")) is (
        grpc.StatusCode.INVALID_ARGUMENT  # the key of another account's attempt
    )
