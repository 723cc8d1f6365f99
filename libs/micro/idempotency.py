"""The server side of idempotency keys: a keyed call's outcome, kept in the service's
database in the transaction of the call's effect, answers every repeat of that call.

A method declared `(micro.v1.idempotency_key) = true` (micro.client.idempotency) runs
through `OutcomeStore.run`: a call without a key runs as always; a keyed call whose
outcome is stored gets that outcome again (the same response bytes, or the same error)
and applies nothing; otherwise the effect runs with a `Once`, whose `claim` its
repository calls first inside the effect's transaction and whose `settle` it calls last
in it. Outcomes are kept per (caller service, method, key) for `idempotency.retention`.

Two attempts of one call at once: the second's claim waits for the first's transaction
(PostgreSQL: the key's uncommitted row; SQLite: the file's write lock), then finds the
outcome and answers it, so the effect happens once. The same key with another request is
INVALID_ARGUMENT: the key was reused for a different call.

Needs the `db` extra of micro.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf.message import Message
from sqlalchemy import (
    Column,
    Connection,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from micro.client.idempotency import (
    IDEMPOTENCY_KEY_METADATA,
    MAX_KEY_LENGTH,
    check_key,
    serving_key,
)
from micro.config.model import Duration, Section
from micro.config.reload import Reload
from micro.db import UtcDateTime, create_tables
from micro.errors import STATUS_BY_NUMBER, ServiceError, invalid_argument
from micro.identity.principal import current_caller

T = TypeVar("T")
R = TypeVar("R")
M = TypeVar("M", bound=Message)

# The stored error's message and field are cut to these lengths (the columns' sizes).
MAX_MESSAGE = 1000
MAX_FIELD = 100
# The code of a row claimed in a transaction not yet settled: never seen committed.
_PENDING = -1
# Expired outcomes are deleted by a claim at most this often (per store).
PURGE_EVERY_S = 60.0


class IdempotencyConfig(Section):
    """The `idempotency` section of a service with keyed methods."""

    reload_policy = Reload.LIVE  # read at each claim

    retention: Duration = timedelta(hours=24)
    """How long a keyed call's outcome answers its repeats; a client retries within its
    call's deadline, and an end user's retry of a request comes within minutes."""


def _v1_outcomes(meta: MetaData) -> None:
    Table(
        "idempotency_outcomes",
        meta,
        Column("caller", String(255), primary_key=True),
        Column("method", String(100), primary_key=True),
        Column("key", String(MAX_KEY_LENGTH), primary_key=True),
        Column("request_digest", String(64), nullable=False),
        Column("code", Integer, nullable=False),
        Column("response", LargeBinary, nullable=False),
        Column("message", String(1000), nullable=False),  # MAX_MESSAGE
        Column("field", String(100), nullable=True),  # MAX_FIELD
        Column("expires_at", UtcDateTime(), nullable=False, index=True),
    )


# A service's migration step that creates the outcomes table (this version of it: a
# later change to the table gets a step of its own).
create_outcomes_table: Callable[[Connection], None] = create_tables(_v1_outcomes)

_meta = MetaData()
_v1_outcomes(_meta)
outcomes = _meta.tables["idempotency_outcomes"]


class KeyedCall:
    """One call's identity: who called which method with which key, and what it asked."""

    def __init__(self, caller: str, method: str, key: str, request: Message) -> None:
        self.caller, self.method, self.key = caller, method, key
        self.digest = hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()

    @classmethod
    def of(
        cls, context: grpc.aio.ServicerContext[Any, Any], method: str, request: Message
    ) -> KeyedCall | None:
        """The call's key from its metadata (None without one); a malformed key is
        INVALID_ARGUMENT naming it."""
        keys = [
            value
            for name, value in context.invocation_metadata() or ()
            if name == IDEMPOTENCY_KEY_METADATA
        ]
        if not keys:
            return None
        key = keys[0] if len(keys) == 1 and isinstance(keys[0], str) else ""
        check_key(key, IDEMPOTENCY_KEY_METADATA)
        caller = current_caller()
        return cls(caller.principal if caller else "", method, key, request)


@dataclass(frozen=True)
class Outcome:
    """A settled call: the response's bytes (code 0), or its error."""

    code: int  # a grpc.StatusCode's number
    response: bytes
    message: str
    field: str | None

    def answer(self, response_type: type[M]) -> M:
        """The stored response, or the stored error raised."""
        if self.code == grpc.StatusCode.OK.value[0]:
            return response_type.FromString(self.response)
        raise ServiceError(STATUS_BY_NUMBER[self.code], self.message, field=self.field)


class Replayed(Exception):
    """Raised by a claim that found the call's outcome: the transaction rolls back (it
    wrote nothing) and OutcomeStore.run answers the outcome."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__("replayed")
        self.outcome = outcome


class OutcomeStore:
    """The outcomes of one service's keyed calls, in its database."""

    def __init__(
        self,
        engine: AsyncEngine,
        cfg: Callable[[], IdempotencyConfig],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._cfg = cfg
        self._clock = clock
        self._last_purge = float("-inf")
        dialect = engine.dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    async def run(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        method: str,
        request: Message,
        response_type: type[M],
        encode: Callable[[T], M],
        effect: Callable[[Once[T] | None], Awaitable[T]],
    ) -> M:
        """The response of a keyed method's call: `encode(await effect(once))`, or the
        stored outcome of an earlier attempt. Calls the effect makes downstream derive
        their keys from this call's key."""
        call = KeyedCall.of(context, method, request)
        if call is None:
            return encode(await effect(None))
        stored = await self.stored(call)
        try:
            if stored is not None:
                raise Replayed(stored)
            with serving_key(call.key):
                result = await effect(Once(self, call, encode))
        except Replayed as replayed:
            return replayed.outcome.answer(response_type)
        return encode(result)

    async def stored(self, call: KeyedCall) -> Outcome | None:
        """The call's settled outcome, when there is one (read outside any transaction:
        a repeat usually finds it here, without a write)."""
        async with self._engine.connect() as conn:
            return await self._read(conn, call)

    async def _read(self, conn: AsyncConnection, call: KeyedCall) -> Outcome | None:
        t = outcomes.c
        row = (
            await conn.execute(
                select(outcomes).where(
                    t.caller == call.caller,
                    t.method == call.method,
                    t.key == call.key,
                    t.expires_at > self._now(),
                )
            )
        ).first()
        if row is None or row.code == _PENDING:
            return None
        if row.request_digest != call.digest:
            raise invalid_argument(
                IDEMPOTENCY_KEY_METADATA,
                f"already used for a different {call.method} request; use a new key",
            )
        return Outcome(row.code, row.response, row.message, row.field)

    async def claim(self, conn: AsyncConnection, call: KeyedCall) -> None:
        """Inside the effect's transaction, before the effect: take the key for this
        transaction, or raise Replayed with the outcome an earlier attempt committed."""
        now = self._now()
        t = outcomes.c
        if self._clock() - self._last_purge >= PURGE_EVERY_S:
            self._last_purge = self._clock()
            await conn.execute(delete(outcomes).where(t.expires_at <= now))
        else:
            await conn.execute(
                delete(outcomes).where(
                    t.caller == call.caller,
                    t.method == call.method,
                    t.key == call.key,
                    t.expires_at <= now,
                )
            )
        claimed = await conn.execute(
            self._insert(outcomes)
            .values(
                caller=call.caller,
                method=call.method,
                key=call.key,
                request_digest=call.digest,
                code=_PENDING,
                response=b"",
                message="",
                field=None,
                expires_at=now + self._cfg().retention,
            )
            .on_conflict_do_nothing(index_elements=["caller", "method", "key"])
        )
        if claimed.rowcount == 1:
            return
        # Another attempt committed first (it held the key until then): its outcome.
        stored = await self._read(conn, call)
        if stored is None:
            raise ServiceError(
                grpc.StatusCode.ABORTED, f"{call.method}: this key's call is still running"
            )
        raise Replayed(stored)

    async def settle(self, conn: AsyncConnection, call: KeyedCall, outcome: Outcome) -> None:
        """Inside the effect's transaction, after the effect: store its outcome."""
        t = outcomes.c
        await conn.execute(
            update(outcomes)
            .where(t.caller == call.caller, t.method == call.method, t.key == call.key)
            .values(
                code=outcome.code,
                response=outcome.response,
                message=outcome.message,
                field=outcome.field,
            )
        )

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)


class Once(Generic[T]):
    """One keyed call, handed to its effect: the repository calls `claim` first and
    `settle` last inside the transaction of the effect."""

    def __init__(
        self,
        store: OutcomeStore,
        call: KeyedCall,
        encode: Callable[[T], Message],
    ) -> None:
        self._store, self._call, self._encode = store, call, encode

    async def claim(self, conn: AsyncConnection) -> None:
        await self._store.claim(conn, self._call)

    async def settle(self, conn: AsyncConnection, result: T | ServiceError) -> None:
        """Store the effect's result (encoded as the response) or the error it ends in."""
        if isinstance(result, ServiceError):
            # Cut to the columns' sizes: an error echoing a long input must still commit.
            field = None if result.field is None else result.field[:MAX_FIELD]
            outcome = Outcome(result.code.value[0], b"", result.message[:MAX_MESSAGE], field)
        else:
            response = self._encode(result).SerializeToString(deterministic=True)
            outcome = Outcome(grpc.StatusCode.OK.value[0], response, "", None)
        await self._store.settle(conn, self._call, outcome)

    def mapped(self, answer: Callable[[R], T | ServiceError]) -> Once[R]:
        """This call settled with `answer(r)` for the repository's own result r."""
        return _MappedOnce(self, answer)


class _MappedOnce(Once[R]):
    def __init__(self, inner: Once[Any], answer: Callable[[R], Any]) -> None:
        super().__init__(inner._store, inner._call, inner._encode)
        self._inner, self._answer = inner, answer

    async def settle(self, conn: AsyncConnection, result: R | ServiceError) -> None:
        answer = result if isinstance(result, ServiceError) else self._answer(result)
        await self._inner.settle(conn, answer)
