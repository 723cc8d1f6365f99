"""user-srv's migrations, repository and use cases on a throwaway PostgreSQL server."""

from __future__ import annotations

import time

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from micro.db import schema_versions
from micro.errors import ServiceError
from user_srv.attempts import LoginBudgets
from user_srv.config import LoginLimitsConfig
from user_srv.migrations import MIGRATIONS
from user_srv.passwords import Argon2PasswordHasher
from user_srv.repository import SqlUserRepository
from user_srv.usecases import UserUseCases

pytestmark = pytest.mark.postgres


async def test_concurrent_starts_apply_each_migration_once(postgres_engine: AsyncEngine) -> None:
    async with postgres_engine.connect() as conn:
        assert await conn.run_sync(schema_versions) == [m.version for m in MIGRATIONS]


async def test_use_cases_on_postgres(
    postgres_engine: AsyncEngine, hasher: Argon2PasswordHasher
) -> None:
    budgets = LoginBudgets(postgres_engine, LoginLimitsConfig, time.time)
    usecases = UserUseCases(SqlUserRepository(postgres_engine), hasher, budgets)

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
