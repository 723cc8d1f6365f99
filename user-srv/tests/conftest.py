"""Fixtures shared by user-srv's tests: real SQLite files and cheap argon2 parameters."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.user_srv.v1 import user_pb2_grpc
from micro.db import open_database
from micro.descriptors import served_service
from micro.testing.grpc_loopback import loopback_grpc_channel
from micro.testing.postgres import throwaway_postgres_or_skip
from user_srv.config import Argon2Config
from user_srv.grpc_api import UserServicer
from user_srv.migrations import MIGRATIONS
from user_srv.passwords import Argon2PasswordHasher
from user_srv.repository import SqlUserRepository
from user_srv.usecases import UserUseCases

if TYPE_CHECKING:
    from api.user_srv.v1.user_pb2_grpc import UserServiceAsyncStub

# Cheap enough for tests on a busy 2-core box; production defaults are in Argon2Config.
FAST_ARGON2 = Argon2Config(time_cost=1, memory_kib=1024, parallelism=1, max_concurrency=2)


@pytest.fixture
def sqlite_url(tmp_path: pathlib.Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/users.db"


@pytest.fixture
async def engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await open_database(sqlite_url, MIGRATIONS, "user-srv")
    yield engine
    await engine.dispose()


@pytest.fixture
def repository(engine: AsyncEngine) -> SqlUserRepository:
    return SqlUserRepository(engine)


@pytest.fixture
def hasher() -> Iterator[Argon2PasswordHasher]:
    hasher = Argon2PasswordHasher(FAST_ARGON2)
    yield hasher
    hasher.close()


@pytest.fixture
def usecases(repository: SqlUserRepository, hasher: Argon2PasswordHasher) -> UserUseCases:
    return UserUseCases(repository, hasher)


@pytest.fixture
async def user_stub(usecases: UserUseCases) -> AsyncIterator[UserServiceAsyncStub]:
    """user-srv's UserService on the framework's real gRPC server, on a loopback port."""
    add = user_pb2_grpc.add_UserServiceServicer_to_server
    async with loopback_grpc_channel(
        (add, UserServicer(usecases), served_service(add).full_name)
    ) as channel:
        yield user_pb2_grpc.UserServiceStub(channel)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server for this session, or a skip."""
    with throwaway_postgres_or_skip(prefix="user-srv-postgres-") as url:
        yield url
