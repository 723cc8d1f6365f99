"""Two writers on one SQLite file at once, as two replicas of a service on one host share
it in the devcluster: micro.db's engines wait for each other (busy timeout, WAL) instead
of failing with "database is locked", and no update is lost."""

from __future__ import annotations

import asyncio
import pathlib

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from micro.db import open_database

from .db_worker import LOCK_NAME, MIGRATIONS, run_together, write_rows

WRITES_PER_WRITER = 150


@pytest.fixture
async def sqlite_url(tmp_path: pathlib.Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/shared.db"
    engine = await open_database(url, MIGRATIONS, LOCK_NAME)
    await engine.dispose()
    return url


async def writes_and_total(engine: AsyncEngine) -> tuple[dict[str, int], int]:
    async with engine.connect() as conn:
        per_writer = await conn.execute(
            text("SELECT writer, count(*) AS n FROM writes GROUP BY writer")
        )
        total = (await conn.execute(text("SELECT total FROM counter WHERE id = 1"))).scalar()
    return {row.writer: row.n for row in per_writer}, int(total or 0)


async def test_two_engines_write_one_file_at_once(sqlite_url: str) -> None:
    engines = await asyncio.gather(
        *(open_database(sqlite_url, MIGRATIONS, LOCK_NAME) for _ in "ab")
    )
    try:
        await asyncio.gather(
            write_rows(engines[0], "a", WRITES_PER_WRITER),
            write_rows(engines[1], "b", WRITES_PER_WRITER),
        )
        assert await writes_and_total(engines[1]) == (
            {"a": WRITES_PER_WRITER, "b": WRITES_PER_WRITER},
            2 * WRITES_PER_WRITER,
        )
    finally:
        await asyncio.gather(*(engine.dispose() for engine in engines))


async def test_two_processes_write_one_file_at_once(
    sqlite_url: str, tmp_path: pathlib.Path
) -> None:
    go = tmp_path / "go"
    results = await asyncio.to_thread(
        run_together,
        [["write", sqlite_url, str(go), writer, str(WRITES_PER_WRITER)] for writer in "ab"],
        go,
    )

    assert [code for code, _ in results] == [0, 0], results
    engine = await open_database(sqlite_url, MIGRATIONS, LOCK_NAME)
    try:
        assert await writes_and_total(engine) == (
            {"a": WRITES_PER_WRITER, "b": WRITES_PER_WRITER},
            2 * WRITES_PER_WRITER,
        )
    finally:
        await engine.dispose()
