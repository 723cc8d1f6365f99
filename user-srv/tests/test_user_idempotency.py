"""Keyed CreateUser on SQLite and PostgreSQL, over gRPC: a repeat with the same key,
even at the same time, answers the user the first call created, where a plain repeat
answers ALREADY_EXISTS."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import grpc
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.user_srv.v1 import user_pb2, user_pb2_grpc
from micro.client.idempotency import IDEMPOTENCY_KEY_METADATA
from micro.idempotency import IdempotencyConfig, OutcomeStore
from micro.testing.fixtures import ServeGrpc
from user_srv.attempts import LoginBudgets
from user_srv.config import LoginLimitsConfig
from user_srv.grpc_api import UserServicer
from user_srv.passwords import Argon2PasswordHasher
from user_srv.repository import SqlUserRepository, users
from user_srv.usecases import UserUseCases

if TYPE_CHECKING:
    from api.user_srv.v1.user_pb2_grpc import UserServiceAsyncStub

NEW_USER = user_pb2.CreateUserRequest(user_name="alice", password="correct horse")


@pytest.fixture
async def stub(
    any_engine: AsyncEngine, hasher: Argon2PasswordHasher, serve_grpc: ServeGrpc
) -> UserServiceAsyncStub:
    budgets = LoginBudgets(any_engine, LoginLimitsConfig, lambda: 0.0)
    usecases = UserUseCases(SqlUserRepository(any_engine), hasher, budgets)
    servicer = UserServicer(usecases, OutcomeStore(any_engine, IdempotencyConfig))
    channel = await serve_grpc(user_pb2_grpc.add_UserServiceServicer_to_server, servicer)
    return user_pb2_grpc.UserServiceStub(channel)


def keyed(key: str) -> Sequence[tuple[str, str]]:
    return ((IDEMPOTENCY_KEY_METADATA, key),)


async def user_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())


async def test_a_keyed_create_repeated_answers_the_same_user(
    stub: UserServiceAsyncStub, any_engine: AsyncEngine
) -> None:
    first = await stub.CreateUser(NEW_USER, metadata=keyed("c1"))
    again = await stub.CreateUser(NEW_USER, metadata=keyed("c1"))
    assert again.SerializeToString() == first.SerializeToString()
    with pytest.raises(grpc.aio.AioRpcError) as plain:
        await stub.CreateUser(NEW_USER)
    assert plain.value.code() is grpc.StatusCode.ALREADY_EXISTS
    assert await user_count(any_engine) == 1


async def test_keyed_creates_at_once_create_one_user(
    stub: UserServiceAsyncStub, any_engine: AsyncEngine
) -> None:
    answers = await asyncio.gather(
        *(stub.CreateUser(NEW_USER, metadata=keyed("c1")) for _ in range(3))
    )
    assert len({a.SerializeToString() for a in answers}) == 1
    assert await user_count(any_engine) == 1


async def test_a_key_reused_for_another_user_is_invalid_argument(
    stub: UserServiceAsyncStub, any_engine: AsyncEngine
) -> None:
    await stub.CreateUser(NEW_USER, metadata=keyed("c1"))
    other = user_pb2.CreateUserRequest(user_name="bob", password="correct horse")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.CreateUser(other, metadata=keyed("c1"))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert IDEMPOTENCY_KEY_METADATA in (raised.value.details() or "")
    assert await user_count(any_engine) == 1
