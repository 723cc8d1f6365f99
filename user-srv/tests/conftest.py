"""Fixtures shared by user-srv's tests: its schema, cheap argon2 parameters, its stub;
the database and the loopback server come from micro.testing.fixtures."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.user_srv.v1 import user_pb2_grpc
from micro.idempotency import IdempotencyConfig, OutcomeStore
from micro.testing.fixtures import FAST_ARGON2, ServeGrpc, schema_fixture
from user_srv.attempts import LoginBudgets
from user_srv.config import Argon2Config, LoginLimitsConfig
from user_srv.grpc_api import UserServicer
from user_srv.migrations import MIGRATIONS
from user_srv.passwords import Argon2PasswordHasher
from user_srv.repository import SqlUserRepository
from user_srv.usecases import UserUseCases

if TYPE_CHECKING:
    from api.user_srv.v1.user_pb2_grpc import UserServiceAsyncStub


schema = schema_fixture(MIGRATIONS, "user-srv")


@pytest.fixture
def repository(engine: AsyncEngine) -> SqlUserRepository:
    return SqlUserRepository(engine)


@pytest.fixture
def hasher() -> Iterator[Argon2PasswordHasher]:
    hasher = Argon2PasswordHasher(Argon2Config(**FAST_ARGON2))
    yield hasher
    hasher.close()


@pytest.fixture
def budgets(engine: AsyncEngine) -> LoginBudgets:
    return LoginBudgets(engine, LoginLimitsConfig, time.time)


@pytest.fixture
def usecases(
    repository: SqlUserRepository, hasher: Argon2PasswordHasher, budgets: LoginBudgets
) -> UserUseCases:
    return UserUseCases(repository, hasher, budgets)


@pytest.fixture
async def user_stub(
    usecases: UserUseCases, engine: AsyncEngine, serve_grpc: ServeGrpc
) -> UserServiceAsyncStub:
    """user-srv's UserService on the framework's real gRPC server, on a loopback port."""
    servicer = UserServicer(usecases, OutcomeStore(engine, IdempotencyConfig))
    channel = await serve_grpc(user_pb2_grpc.add_UserServiceServicer_to_server, servicer)
    return user_pb2_grpc.UserServiceStub(channel)
