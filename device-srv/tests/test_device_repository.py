"""SqlDeviceRepository on a real SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from device_srv.domain import Device
from device_srv.migrations import MIGRATIONS
from device_srv.repository import SqlDeviceRepository, devices_table
from micro.db import open_database, schema_versions


async def test_get_answers_stored_devices_and_none_for_others(
    sql_repository: SqlDeviceRepository,
) -> None:
    await sql_repository.upsert([Device("device1", True), Device("device2", False)])
    assert await sql_repository.get("device1") == Device("device1", True)
    assert await sql_repository.get("device2") == Device("device2", False)
    assert await sql_repository.get("device3") is None


async def test_upsert_updates_existing_rows_and_leaves_others(
    sql_repository: SqlDeviceRepository,
) -> None:
    await sql_repository.upsert([Device("a", True), Device("b", True)])
    await sql_repository.upsert([Device("b", False), Device("c", False)])
    assert await sql_repository.list_after(None, 10) == [
        Device("a", True),
        Device("b", False),
        Device("c", False),
    ]


async def test_upsert_of_nothing_changes_nothing(sql_repository: SqlDeviceRepository) -> None:
    await sql_repository.upsert([])
    assert await sql_repository.list_after(None, 10) == []


async def test_list_after_orders_by_name_and_honours_the_limit(
    sql_repository: SqlDeviceRepository,
) -> None:
    await sql_repository.upsert([Device(n, True) for n in ["d", "b", "a", "c", "e"]])
    assert [d.name for d in await sql_repository.list_after(None, 2)] == ["a", "b"]
    assert [d.name for d in await sql_repository.list_after("b", 2)] == ["c", "d"]
    assert [d.name for d in await sql_repository.list_after("e", 2)] == []


async def test_rows_survive_a_reopened_engine(sqlite_url: str, tmp_path: pathlib.Path) -> None:
    engine = await open_database(sqlite_url, MIGRATIONS, "device-srv")
    await SqlDeviceRepository(engine).upsert([Device("device1", True)])
    await engine.dispose()

    assert (tmp_path / "db" / "service.db").is_file()
    reopened = await open_database(sqlite_url, MIGRATIONS, "device-srv")
    try:
        assert await SqlDeviceRepository(reopened).get("device1") == Device("device1", True)
    finally:
        await reopened.dispose()


async def test_a_file_from_before_versioned_migrations_opens_with_its_rows(
    tmp_path: pathlib.Path,
) -> None:
    # The schema device-srv created before it had versioned migrations: no schema_version.
    url = f"sqlite+aiosqlite:///{tmp_path}/old-devices.db"
    old = create_async_engine(url)
    async with old.begin() as conn:
        await conn.execute(
            text("CREATE TABLE devices (name VARCHAR(63) PRIMARY KEY, active BOOLEAN NOT NULL)")
        )
        await conn.execute(text("INSERT INTO devices VALUES ('device1', 1)"))
    await old.dispose()

    engine = await open_database(url, MIGRATIONS, "device-srv")
    try:
        assert await SqlDeviceRepository(engine).get("device1") == Device("device1", True)
        async with engine.connect() as conn:
            assert await conn.run_sync(schema_versions) == [m.version for m in MIGRATIONS]
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def postgres_admin(url: str) -> AsyncIterator[AsyncConnection]:
    """A connection for setting the stage, outside the code under test."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            yield conn
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_the_repository_on_postgresql(postgres_url: str) -> None:
    engine = await open_database(postgres_url, MIGRATIONS, "device-srv")
    try:
        repository = SqlDeviceRepository(engine)
        async with engine.begin() as conn:
            await conn.execute(devices_table.delete())
        await repository.upsert([Device("b", True), Device("a", False)])
        await repository.upsert([Device("a", True), Device("c", False)])
        assert await repository.get("a") == Device("a", True)
        assert await repository.get("zz") is None
        assert await repository.list_after(None, 2) == [Device("a", True), Device("b", True)]
        assert await repository.list_after("b", 5) == [Device("c", False)]
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_replicas_starting_together_create_the_schema_once(postgres_url: str) -> None:
    async with postgres_admin(postgres_url) as admin:
        await admin.execute(text("DROP TABLE IF EXISTS devices, schema_version"))
    engines = await asyncio.gather(
        *(open_database(postgres_url, MIGRATIONS, "device-srv") for _ in range(4))
    )
    try:
        await SqlDeviceRepository(engines[0]).upsert([Device("device1", True)])
        assert await SqlDeviceRepository(engines[3]).get("device1") == Device("device1", True)
    finally:
        await asyncio.gather(*(engine.dispose() for engine in engines))


async def test_replicas_on_one_sqlite_file_seed_at_once(sqlite_url: str) -> None:
    engines = await asyncio.gather(
        *(open_database(sqlite_url, MIGRATIONS, "device-srv") for _ in range(4))
    )
    try:
        seeds = [[Device(f"d{i}-{n}", True) for n in range(50)] for i in range(4)]
        await asyncio.gather(
            *(SqlDeviceRepository(e).upsert(s) for e, s in zip(engines, seeds, strict=True))
        )
        assert len(await SqlDeviceRepository(engines[0]).list_after(None, 500)) == 200
    finally:
        await asyncio.gather(*(engine.dispose() for engine in engines))
