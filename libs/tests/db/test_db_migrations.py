"""micro.db's migration runner on real SQLite files and a throwaway PostgreSQL server:
order, idempotence, one transaction, and replicas (engines, processes) starting together."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from micro.db import (
    SQLITE_BUSY_TIMEOUT_MS,
    Migration,
    create_engine,
    open_database,
    schema_versions,
    use_wal,
)

from .db_worker import LOCK_NAME, MIGRATIONS, TABLES, run_together


async def versions_and_steps(engine: AsyncEngine) -> tuple[list[int], list[int]]:
    """The recorded versions and the steps the migrations themselves wrote down."""
    async with engine.connect() as conn:
        versions = await conn.run_sync(schema_versions)
        steps = (await conn.execute(text("SELECT version FROM steps ORDER BY version"))).all()
    return versions, [row.version for row in steps]


async def assert_engines_opening_together_apply_each_step_once(url: str) -> None:
    """Four engines (replicas in one process) open the database at once."""
    engines = await asyncio.gather(*(open_database(url, MIGRATIONS, LOCK_NAME) for _ in range(4)))
    try:
        for engine in engines:
            assert await versions_and_steps(engine) == ([1, 2], [1, 2])
    finally:
        await asyncio.gather(*(engine.dispose() for engine in engines))


async def migrate_in_processes_together(url: str, go: pathlib.Path) -> AsyncEngine:
    """Three processes migrate at once; answers an engine on the result, once each
    recorded version and step is there exactly once."""
    results = await asyncio.to_thread(
        run_together, [["migrate", url, str(go)] for _ in range(3)], go
    )
    assert [code for code, _ in results] == [0, 0, 0], results
    engine = create_engine(url)
    try:
        assert await versions_and_steps(engine) == ([1, 2], [1, 2])
    except BaseException:
        await engine.dispose()
        raise
    return engine


def table_names(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def test_migrations_apply_in_version_order_whatever_the_list_order(
    sqlite_url: str,
) -> None:
    applied: list[int] = []

    def step(version: int) -> Migration:
        def apply(conn: Connection) -> None:
            applied.append(version)
            MIGRATIONS[version - 1].apply(conn)  # v2 needs v1's table

        return Migration(version, f"step {version}", apply)

    engine = await open_database(sqlite_url, [step(2), step(1)], LOCK_NAME)
    try:
        assert applied == [1, 2]
        assert await versions_and_steps(engine) == ([1, 2], [1, 2])
    finally:
        await engine.dispose()


async def test_reopening_applies_only_the_new_steps(sqlite_url: str) -> None:
    engine = await open_database(sqlite_url, MIGRATIONS[:1], LOCK_NAME)
    await engine.dispose()
    # v1 again would fail (plain CREATE TABLE, primary-key row): it must be skipped.
    engine = await open_database(sqlite_url, MIGRATIONS, LOCK_NAME)
    await engine.dispose()
    engine = await open_database(sqlite_url, MIGRATIONS, LOCK_NAME)
    try:
        assert await versions_and_steps(engine) == ([1, 2], [1, 2])
    finally:
        await engine.dispose()


async def test_a_failing_step_leaves_the_database_as_it_was(sqlite_url: str) -> None:
    def broken(conn: Connection) -> None:
        conn.execute(text("CREATE TABLE half_done (id INTEGER)"))
        raise RuntimeError("step 3 is broken")

    engine = await open_database(sqlite_url, MIGRATIONS[:1], LOCK_NAME)
    await engine.dispose()
    with pytest.raises(RuntimeError, match="step 3 is broken"):
        await open_database(sqlite_url, [*MIGRATIONS, Migration(3, "broken", broken)], LOCK_NAME)

    engine = await open_database(sqlite_url, MIGRATIONS[:1], LOCK_NAME)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(schema_versions) == [1]
            tables = await conn.run_sync(table_names)
        assert "half_done" not in tables
        assert "writes" not in tables  # step 2 went with step 3: one transaction
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("migrations", "problem"),
    [
        ([MIGRATIONS[0], MIGRATIONS[0]], "listed more than once: [1]"),
        ([Migration(0, "zero", MIGRATIONS[0].apply)], "start at 1"),
    ],
)
async def test_bad_version_lists_are_refused_before_touching_the_database(
    tmp_path: pathlib.Path, migrations: list[Migration], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        await open_database(f"sqlite+aiosqlite:///{tmp_path}/app.db", migrations, LOCK_NAME)
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/app.db")
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(table_names) == set()
    finally:
        await engine.dispose()


@pytest.mark.parametrize("round_", range(10))
async def test_engines_opening_one_new_sqlite_file_together_apply_each_step_once(
    sqlite_url: str, round_: int
) -> None:
    # Several rounds: the engines race to switch the new file to WAL, which SQLite
    # refuses at once ("database is locked") to all but one of them.
    await assert_engines_opening_together_apply_each_step_once(sqlite_url)


async def test_processes_migrating_one_sqlite_file_together_apply_each_step_once(
    tmp_path: pathlib.Path, sqlite_url: str
) -> None:
    engine = await migrate_in_processes_together(sqlite_url, tmp_path / "go")
    try:
        async with engine.connect() as conn:
            pids = (await conn.execute(text("SELECT DISTINCT pid FROM steps"))).scalars().all()
        assert len(pids) == 1  # one process applied both steps in its one transaction
    finally:
        await engine.dispose()


async def test_a_sqlite_file_gets_its_folder_wal_foreign_keys_and_a_busy_timeout(
    tmp_path: pathlib.Path,
) -> None:
    # A URL without a driver gets the async one.
    engine = create_engine(f"sqlite:///{tmp_path}/new/folder/app.db")
    try:
        assert engine.dialect.driver == "aiosqlite"
        await use_wal(engine)
        async with engine.connect() as conn:
            pragmas = [
                (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            ]
        assert pragmas == ["wal", 1, SQLITE_BUSY_TIMEOUT_MS]
        assert (tmp_path / "new" / "folder" / "app.db").is_file()
    finally:
        await engine.dispose()


def test_a_postgresql_url_without_a_driver_gets_asyncpg() -> None:
    engine = create_engine("postgresql://user@127.0.0.1:1/app")
    assert engine.dialect.driver == "asyncpg"
    engine.sync_engine.dispose()


# --- PostgreSQL ------------------------------------------------------------------------


@pytest.fixture
async def fresh_postgres(postgres_url: str) -> AsyncIterator[str]:
    """The server's database without the tables of these tests, before and after."""

    async def drop() -> None:
        engine = create_async_engine(postgres_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f"DROP TABLE IF EXISTS {', '.join(TABLES)}"))
        finally:
            await engine.dispose()

    await drop()
    yield postgres_url
    await drop()


@pytest.mark.postgres
async def test_postgres_replicas_starting_together_apply_each_step_once(
    fresh_postgres: str,
) -> None:
    await assert_engines_opening_together_apply_each_step_once(fresh_postgres)


@pytest.mark.postgres
async def test_postgres_processes_migrating_together_apply_each_step_once(
    fresh_postgres: str, tmp_path: pathlib.Path
) -> None:
    engine = await migrate_in_processes_together(fresh_postgres, tmp_path / "go")
    await engine.dispose()


@pytest.mark.postgres
async def test_postgres_reopening_applies_only_the_new_steps(fresh_postgres: str) -> None:
    engine = await open_database(fresh_postgres, MIGRATIONS[:1], LOCK_NAME)
    await engine.dispose()
    engine = await open_database(fresh_postgres, MIGRATIONS, LOCK_NAME)
    try:
        assert await versions_and_steps(engine) == ([1, 2], [1, 2])
    finally:
        await engine.dispose()
