"""user-srv's migrations, repository and use cases on a throwaway PostgreSQL server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from micro.db import schema_versions
from micro.errors import ServiceError
from micro.testing.database import opened_by_two_replicas
from user_srv.migrations import MIGRATIONS
from user_srv.passwords import Argon2PasswordHasher
from user_srv.repository import SqlUserRepository
from user_srv.usecases import UserUseCases

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg_engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    async with opened_by_two_replicas(
        postgres_url, MIGRATIONS, "user-srv", tables=("users",)
    ) as engine:
        yield engine


async def test_concurrent_starts_apply_each_migration_once(pg_engine: AsyncEngine) -> None:
    async with pg_engine.connect() as conn:
        assert await conn.run_sync(schema_versions) == [m.version for m in MIGRATIONS]


async def test_use_cases_on_postgres(pg_engine: AsyncEngine, hasher: Argon2PasswordHasher) -> None:
    usecases = UserUseCases(SqlUserRepository(pg_engine), hasher)

    first = await usecases.create_user("thangn", "123456")
    with pytest.raises(ServiceError) as duplicate:
        await usecases.create_user("thangn", "123456")
    verified = await usecases.verify_password("thangn", "123456")
    page, token = await usecases.list_users(1, "")

    assert first.id == "1"
    assert duplicate.value.code is grpc.StatusCode.ALREADY_EXISTS
    assert verified == first
    assert page == [first]
    assert token == ""
