"""SqlUserRepository and the migrations on real SQLite files."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from micro.db import open_database, schema_versions
from user_srv.domain import Role
from user_srv.migrations import MIGRATIONS
from user_srv.repository import SqlUserRepository, UserExistsError


async def test_migrations_are_recorded_and_applied_once(
    engine: AsyncEngine, sqlite_url: str
) -> None:
    async with engine.connect() as conn:
        assert await conn.run_sync(schema_versions) == [m.version for m in MIGRATIONS]

    reopened = await open_database(sqlite_url, MIGRATIONS, "user-srv")
    try:
        async with reopened.connect() as conn:
            assert await conn.run_sync(schema_versions) == [m.version for m in MIGRATIONS]
    finally:
        await reopened.dispose()


async def test_users_survive_reopening_the_file(
    repository: SqlUserRepository, sqlite_url: str
) -> None:
    added = await repository.add("thangn", "hash-1", Role.ADMIN)

    reopened = await open_database(sqlite_url, MIGRATIONS, "user-srv")
    try:
        stored = await SqlUserRepository(reopened).by_name("thangn")
    finally:
        await reopened.dispose()

    assert stored is not None
    assert stored.user == added
    assert stored.password_hash == "hash-1"
    assert stored.user.create_time.tzinfo is not None


async def test_duplicate_name_raises_user_exists(repository: SqlUserRepository) -> None:
    await repository.add("alice", "h", Role.USER)

    with pytest.raises(UserExistsError):
        await repository.add("alice", "h2", Role.USER)


async def test_ids_count_from_one_and_pages_follow_them(repository: SqlUserRepository) -> None:
    added = [await repository.add(f"u{i}", "h", Role.USER) for i in range(4)]

    assert [u.id for u in added] == ["1", "2", "3", "4"]
    assert [u.user_name for u in await repository.page(1, 2)] == ["u1", "u2"]
    assert await repository.page(4, 10) == []
    assert await repository.by_id(3) == added[2]
    assert await repository.by_id(99) is None


async def test_password_hash_update(repository: SqlUserRepository) -> None:
    user = await repository.add("bob", "old", Role.USER)

    await repository.set_password_hash(int(user.id), "new")

    stored = await repository.by_name("bob")
    assert stored is not None
    assert stored.password_hash == "new"
