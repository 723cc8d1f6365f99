"""Fixtures shared by user-srv's tests: real SQLite files and cheap argon2 parameters."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from user_srv.config import Argon2Config
from user_srv.database import open_database
from user_srv.migrations import MIGRATIONS
from user_srv.passwords import Argon2PasswordHasher
from user_srv.repository import SqlUserRepository
from user_srv.usecases import UserUseCases

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
