"""micro.idempotency on a real SQLite database behind the framework's gRPC server: a
keyed call's outcome answers its repeats, and the effect happens once."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.db import Migration, create_tables, open_database
from micro.errors import ServiceError
from micro.idempotency import (
    IdempotencyConfig,
    Once,
    OutcomeStore,
    create_outcomes_table,
    outcomes,
)
from micro.testing.echo import EchoServicer
from micro.testing.grpc_loopback import loopback_grpc_channel

KEY = "x-idempotency-key"


def _entries(meta: MetaData) -> None:
    Table(
        "entries",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("text", String(50), nullable=False),
    )


_meta = MetaData()
_entries(_meta)
entries = _meta.tables["entries"]
MIGRATIONS = (
    Migration(1, "entries", create_tables(_entries)),
    Migration(2, "idempotency outcomes", create_outcomes_table),
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class OnceAppender(EchoServicer):
    """AppendOnce adds an entry and answers every entry so far; the text "refuse" adds
    it and ends in FAILED_PRECONDITION, committed with the entry. With hold set, an
    effect waits (bounded) until `hold` calls have arrived, so that they overlap."""

    def __init__(self, engine: AsyncEngine, store: OutcomeStore) -> None:
        self.engine, self.store = engine, store
        self.arrived = 0
        self.hold = 0
        self._arrivals = asyncio.Condition()

    async def AppendOnce(
        self, request: echo_pb2.AppendOnceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.AppendOnceResponse:
        async with self._arrivals:
            self.arrived += 1
            self._arrivals.notify_all()

        async def effect(once: Once[list[str]] | None) -> list[str]:
            async with self.engine.begin() as conn:
                if once is not None:
                    await once.claim(conn)
                async with self._arrivals:
                    await asyncio.wait_for(
                        self._arrivals.wait_for(lambda: self.arrived >= self.hold), 5
                    )
                await conn.execute(entries.insert().values(text=request.text))
                texts = list((await conn.execute(select(entries.c.text))).scalars())
                result: list[str] | ServiceError = texts
                if request.text == "refuse":
                    result = ServiceError(grpc.StatusCode.FAILED_PRECONDITION, "refused")
                if once is not None:
                    await once.settle(conn, result)
            if isinstance(result, ServiceError):
                raise result
            return result

        def encode(texts: list[str]) -> echo_pb2.AppendOnceResponse:
            return echo_pb2.AppendOnceResponse(entries=[echo_pb2.Entry(text=t) for t in texts])

        return await self.store.run(
            context, "AppendOnce", request, echo_pb2.AppendOnceResponse, encode, effect
        )


@pytest.fixture
async def engine(tmp_path: pathlib.Path) -> AsyncIterator[AsyncEngine]:
    engine = await open_database(f"sqlite+aiosqlite:///{tmp_path}/once.db", MIGRATIONS, "once")
    yield engine
    await engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def servicer(engine: AsyncEngine, clock: Clock) -> OnceAppender:
    cfg = IdempotencyConfig(retention=timedelta(hours=1))
    return OnceAppender(engine, OutcomeStore(engine, lambda: cfg, clock))


@pytest.fixture
async def stub(servicer: OnceAppender) -> AsyncIterator[echo_pb2_grpc.EchoServiceAsyncStub]:
    async with loopback_grpc_channel(
        (echo_pb2_grpc.add_EchoServiceServicer_to_server, servicer)
    ) as channel:
        yield echo_pb2_grpc.EchoServiceStub(channel)


async def count(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def append(
    stub: echo_pb2_grpc.EchoServiceAsyncStub, text: str, key: str | None
) -> echo_pb2.AppendOnceResponse:
    metadata = () if key is None else ((KEY, key),)
    return await stub.AppendOnce(echo_pb2.AppendOnceRequest(text=text), metadata=metadata)


async def test_a_repeat_answers_the_first_outcome_and_applies_nothing(
    stub: echo_pb2_grpc.EchoServiceAsyncStub, engine: AsyncEngine
) -> None:
    first = await append(stub, "a", "k1")
    await append(stub, "b", "k2")
    repeat = await append(stub, "a", "k1")
    assert repeat.SerializeToString() == first.SerializeToString()
    assert [e.text for e in repeat.entries] == ["a"]
    assert await count(engine, entries) == 2


async def test_calls_without_a_key_run_each_time(
    stub: echo_pb2_grpc.EchoServiceAsyncStub, engine: AsyncEngine
) -> None:
    await append(stub, "a", None)
    await append(stub, "a", None)
    assert await count(engine, entries) == 2
    assert await count(engine, outcomes) == 0


async def test_two_attempts_at_once_apply_once(
    stub: echo_pb2_grpc.EchoServiceAsyncStub, engine: AsyncEngine, servicer: OnceAppender
) -> None:
    servicer.hold = 2  # the first effect waits, holding the key, until both arrived
    answers = await asyncio.gather(append(stub, "a", "k1"), append(stub, "a", "k1"))
    assert answers[0] == answers[1]
    assert await count(engine, entries) == 1


async def test_an_error_outcome_is_answered_again(
    stub: echo_pb2_grpc.EchoServiceAsyncStub, engine: AsyncEngine
) -> None:
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await append(stub, "refuse", "k1")
        assert raised.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert raised.value.details() == "refused"
    assert await count(engine, entries) == 1  # committed with its error, once


async def test_a_key_reused_for_another_request_is_invalid_argument(
    stub: echo_pb2_grpc.EchoServiceAsyncStub, engine: AsyncEngine
) -> None:
    await append(stub, "a", "k1")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await append(stub, "b", "k1")
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "x-idempotency-key" in (raised.value.details() or "")
    assert "different AppendOnce request" in (raised.value.details() or "")
    assert await count(engine, entries) == 1


@pytest.mark.parametrize("key", ["", "k" * 65, "no spaces", "a/b"])
async def test_a_malformed_key_is_invalid_argument(
    stub: echo_pb2_grpc.EchoServiceAsyncStub, engine: AsyncEngine, key: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await append(stub, "a", key)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "x-idempotency-key" in (raised.value.details() or "")
    assert await count(engine, entries) == 0


async def test_an_outcome_expires_after_the_retention_and_is_purged(
    stub: echo_pb2_grpc.EchoServiceAsyncStub, engine: AsyncEngine, clock: Clock
) -> None:
    await append(stub, "a", "k1")
    await append(stub, "a", "k2")
    clock.now += timedelta(hours=1, seconds=1).total_seconds()
    again = await append(stub, "a", "k1")  # a new call now: it applies again
    assert [e.text for e in again.entries] == ["a", "a", "a"]
    assert await count(engine, outcomes) == 1  # k2's expired outcome is gone too
