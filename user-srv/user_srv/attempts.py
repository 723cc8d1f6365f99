"""Login budgets in the database: reserve before a password check, settle after it.

One row per budget key (an account and client, or a client address). A reservation is a
conditional UPDATE that takes the row's write lock (PostgreSQL row lock, SQLite's single
writer), so every replica sees the same count and checks in flight use the budget too.

A keyed attempt (VerifyPassword with an idempotency key: a retry of one login attempt)
is counted once: its settle records the key's result (micro.idempotency) in the same
transaction as the count, and a repeat of a wrong password is answered that failure
without a check or a count. Only a wrong password is replayed: a repeat after a success
checks again (so a key never stands in for the password), and every other repeat counts
as an attempt of its own.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import grpc
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, case, delete, select
from sqlalchemy import update as sql_update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from micro.errors import ServiceError, rate_limited
from micro.idempotency import KeyedCall, Outcome, OutcomeStore, Replayed
from user_srv.config import LoginLimitsConfig

# Budget keys are at most this long: a prefix, a user name (64) and a client key (64).
MAX_KEY_LENGTH = 160

_meta = MetaData()
# Times are Unix seconds: the comparisons and the backoff arithmetic stay portable SQL.
login_budgets = Table(
    "login_budgets",
    _meta,
    Column("key", String(MAX_KEY_LENGTH), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("lockouts", Integer, nullable=False),
    Column("locked_until", Float, nullable=False),
    Column("in_flight", Integer, nullable=False),
    Column("reserved_at", Float, nullable=False),
    Column("touched", Float, nullable=False),
)


# The status stored for a keyed attempt's result: the one a repeat may be answered with.
_WRONG_PASSWORD: int = grpc.StatusCode.UNAUTHENTICATED.value[0]
_RIGHT_PASSWORD: int = grpc.StatusCode.OK.value[0]


@dataclass(frozen=True)
class KeyedAttempt:
    """A VerifyPassword call with an idempotency key; its call's request digest is of
    the account's name alone, so no fast hash of a password is ever stored."""

    store: OutcomeStore
    call: KeyedCall

    async def failed_before(self) -> bool:
        """Whether an earlier attempt with this key had a wrong password (INVALID_ARGUMENT
        when the key was used for another account)."""
        stored = await self.store.stored(self.call)
        return stored is not None and stored.code == _WRONG_PASSWORD

    async def count_once(self, conn: AsyncConnection, success: bool) -> bool:
        """Inside the settle's transaction: record this attempt's result under its key;
        True when an attempt with this key already had a wrong password (this one is a
        repeat: not counted, and answered that failure)."""
        try:
            await self.store.claim(conn, self.call)
        except Replayed as replayed:
            return replayed.outcome.code == _WRONG_PASSWORD
        except ServiceError:
            return False  # another request's key (a race past failed_before): counted
        code = _RIGHT_PASSWORD if success else _WRONG_PASSWORD
        await self.store.settle(conn, self.call, Outcome(code, b"", "", None))
        return False


@dataclass(frozen=True)
class Budget:
    """One key and the failures it may have before a lockout."""

    key: str
    max_failures: int
    # A success resets this key's failures and lockouts (a client's own key, not an
    # address, which an attacker could otherwise reset with an account of their own).
    reset_on_success: bool
    # Checks at once on this key: capped for a client (one account's burst holds few
    # argon2 slots), not for an address (many users may share one behind a NAT).
    max_in_flight: int


def lockout(cfg: LoginLimitsConfig, lockouts_before: int) -> timedelta:
    """The lockout after lockouts_before lockouts in a row: doubling, at most max_lockout."""
    # Float seconds: a long run of lockouts must not overflow timedelta's arithmetic.
    seconds = cfg.first_lockout.total_seconds() * 2.0 ** min(lockouts_before, 1000)
    return timedelta(seconds=min(seconds, cfg.max_lockout.total_seconds()))


class LoginBudgets:
    def __init__(
        self,
        engine: AsyncEngine,
        cfg: Callable[[], LoginLimitsConfig],
        clock: Callable[[], float],
    ) -> None:
        self._engine = engine
        self._cfg = cfg
        self._clock = clock
        insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._insert = insert
        # Settles under way, kept referenced so that a cancelled caller's one finishes.
        self._settling: set[asyncio.Task[bool]] = set()

    def budgets(self, user_name: str, client_key: str, address: str) -> list[Budget]:
        """A known device has its own budget per account; unknown clients share the
        account's and, with a known address, the address's. A device's login skips the
        address budget: a shared address (NAT, a proxy) must not lock out its owner."""
        cfg = self._cfg()
        if client_key:
            key = f"dev:{user_name}:{client_key}"
            return [Budget(key, cfg.device_max_failures, True, cfg.max_in_flight)]
        found = [Budget(f"acct:{user_name}", cfg.unknown_max_failures, True, cfg.max_in_flight)]
        if address:
            limit = cfg.address_max_failures
            found.append(Budget(f"addr:{address}", limit, False, limit))
        return found

    async def reserve(self, budgets: Sequence[Budget]) -> None:
        """Count one attempt in flight on every budget, all or none; a used-up budget
        raises RESOURCE_EXHAUSTED (rate limited) with the seconds until it frees up."""
        cfg = self._cfg()
        now = self._clock()
        # A used-up key is refused on one read: a flood on a locked account costs no write
        # transaction. The write below re-checks under the row lock, so the limit holds.
        refusal = await self._refused_on_read(budgets, cfg, now)
        if refusal is not None:
            raise refusal
        async with self._engine.begin() as conn:
            for budget in budgets:
                refusal = await self._reserve_one(conn, budget, cfg, now)
                if refusal is not None:
                    # Leaving the block by an exception rolls back the other keys' holds.
                    raise refusal

    async def settle(
        self,
        budgets: Sequence[Budget],
        *,
        checked: bool,
        success: bool,
        keyed: KeyedAttempt | None = None,
    ) -> bool:
        """End the attempt: a checked failure stays counted (and may lock the key), a
        success resets the client's key; unchecked (shed) attempts only free their hold.
        With `keyed` (given when the check decided), True when the attempt repeated one
        whose password was wrong: it only freed its hold, and answers that failure.

        It runs to its end even when its caller is cancelled meanwhile: a cancelled call
        is often cancelled twice (its deadline, then the transport), and a settle cut
        short would hold the key until stale_in_flight."""
        settling = asyncio.create_task(
            self._settle(budgets, checked=checked, success=success, keyed=keyed)
        )
        self._settling.add(settling)
        settling.add_done_callback(self._settling.discard)
        return await asyncio.shield(settling)

    async def _settle(
        self,
        budgets: Sequence[Budget],
        *,
        checked: bool,
        success: bool,
        keyed: KeyedAttempt | None,
    ) -> bool:
        cfg = self._cfg()
        now = self._clock()
        async with self._engine.begin() as conn:
            repeat = keyed is not None and await keyed.count_once(conn, success)
            for budget in budgets:
                await self._settle_one(
                    conn, budget, cfg, now, checked=checked and not repeat, success=success
                )
        return repeat

    async def forget_idle(self) -> int:
        """Delete keys untouched for forget_after and not locked; answers how many."""
        cfg = self._cfg()
        now = self._clock()
        idle = now - cfg.forget_after.total_seconds()
        t = login_budgets.c
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(login_budgets).where(t.touched < idle, t.locked_until <= now)
            )
        return int(result.rowcount)

    async def _refused_on_read(
        self, budgets: Sequence[Budget], cfg: LoginLimitsConfig, now: float
    ) -> ServiceError | None:
        """The refusal a reservation would answer, from the keys' state as last committed;
        None when every key may have room (a missing key has)."""
        t = login_budgets.c
        by_key = {budget.key: budget for budget in budgets}
        query = select(
            t.key, t.failures, t.locked_until, _live_in_flight(cfg, now).label("live")
        ).where(t.key.in_(by_key))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        waits = [
            row.locked_until - now
            for row in rows
            if not _has_room(by_key[row.key], row.failures, row.locked_until, row.live, now)
        ]
        return _refusal(max(waits)) if waits else None

    async def _reserve_one(
        self, conn: AsyncConnection, budget: Budget, cfg: LoginLimitsConfig, now: float
    ) -> ServiceError | None:
        t = login_budgets.c
        await conn.execute(
            self._insert(login_budgets)
            .values(
                key=budget.key,
                failures=0,
                lockouts=0,
                locked_until=0.0,
                in_flight=0,
                reserved_at=0.0,
                touched=now,
            )
            .on_conflict_do_nothing(index_elements=["key"])
        )
        in_flight = _live_in_flight(cfg, now)
        result = await conn.execute(
            sql_update(login_budgets)
            .where(
                t.key == budget.key,
                t.locked_until <= now,
                in_flight < budget.max_in_flight,
                t.failures + in_flight < budget.max_failures,
            )
            .values(in_flight=in_flight + 1, reserved_at=now, touched=now)
        )
        if result.rowcount == 1:
            return None
        row = (await conn.execute(select(t.locked_until).where(t.key == budget.key))).one()
        return _refusal(row.locked_until - now)

    async def _settle_one(
        self,
        conn: AsyncConnection,
        budget: Budget,
        cfg: LoginLimitsConfig,
        now: float,
        *,
        checked: bool,
        success: bool,
    ) -> None:
        t = login_budgets.c
        freed = case((t.in_flight > 0, t.in_flight - 1), else_=0)
        if not checked:
            values: dict[str, object] = {"in_flight": freed}
        elif success and budget.reset_on_success:
            values = {"in_flight": freed, "failures": 0, "lockouts": 0}
        elif success:
            values = {"in_flight": freed}
        else:
            values = {"in_flight": freed, "failures": t.failures + 1}
        await conn.execute(
            sql_update(login_budgets).where(t.key == budget.key).values(touched=now, **values)
        )
        if not checked or success:
            return
        # The UPDATE above holds the row's write lock: this read and the lockout are safe.
        row = (
            await conn.execute(select(t.failures, t.lockouts).where(t.key == budget.key))
        ).first()
        if row is None or row.failures < budget.max_failures:
            return
        until = now + lockout(cfg, row.lockouts).total_seconds()
        await conn.execute(
            sql_update(login_budgets)
            .where(t.key == budget.key)
            .values(failures=0, lockouts=t.lockouts + 1, locked_until=until)
        )


def _has_room(
    budget: Budget, failures: int, locked_until: float, in_flight: int, now: float
) -> bool:
    """The reservation's condition (see _reserve_one), on values read."""
    return (
        locked_until <= now
        and in_flight < budget.max_in_flight
        and failures + in_flight < budget.max_failures
    )


def _refusal(locked_for: float) -> ServiceError:
    """Rate limited, retried once the lock ends (after a second when not locked). The
    wait is the lock's exact rest: a caller may remember the refusal that long."""
    wait = timedelta(seconds=locked_for if locked_for > 0 else 1)
    seconds = max(1, math.ceil(wait.total_seconds()))
    return rate_limited(f"too many login attempts: retry after {seconds} s", wait)


def _live_in_flight(cfg: LoginLimitsConfig, now: float) -> ColumnElement[int]:
    """in_flight, or 0 when the last reservation is stale (its replica died mid-check)."""
    t = login_budgets.c
    stale = now - cfg.stale_in_flight.total_seconds()
    return case((t.reserved_at <= stale, 0), else_=t.in_flight)
