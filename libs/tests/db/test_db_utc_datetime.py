"""micro.db.UtcDateTime on a real SQLite file and a throwaway PostgreSQL server: aware
values are stored as UTC and come back as aware UTC, naive ones are refused."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, select
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from micro.db import UtcDateTime, create_engine

_meta = MetaData()
moments = Table(
    "utc_moments",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime(), nullable=True),
)

PLUS_TWO = timezone(timedelta(hours=2))
MINUS_TWO = timezone(timedelta(hours=-2))
# 10:00 UTC, written at a zone two hours east.
STORED = datetime(2026, 3, 1, 12, 0, tzinfo=PLUS_TWO)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def engine(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> AsyncIterator[AsyncEngine]:
    """An engine with an empty utc_moments table, on each kind of database."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/moments.db"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(_meta.drop_all)
        await conn.run_sync(_meta.create_all)
    try:
        yield engine
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(_meta.drop_all)
        await engine.dispose()


async def test_an_aware_time_comes_back_as_the_same_instant_in_utc(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(moments.insert(), [{"id": 1, "at": STORED}, {"id": 2, "at": None}])
        rows = {row.id: row.at for row in await conn.execute(select(moments))}
    assert rows == {1: STORED, 2: None}
    assert rows[1] is not None
    assert rows[1].tzinfo is UTC
    assert rows[1].hour == 10


async def test_comparisons_use_the_instant_not_the_wall_time(engine: AsyncEngine) -> None:
    # 09:30 at UTC-2 is 11:30 UTC: later than the stored 10:00 UTC, although its wall
    # time reads earlier.
    later = datetime(2026, 3, 1, 9, 30, tzinfo=MINUS_TWO)
    async with engine.begin() as conn:
        await conn.execute(moments.insert().values(id=1, at=STORED))
        after = (await conn.execute(select(moments.c.id).where(moments.c.at > later))).all()
        before = (await conn.execute(select(moments.c.id).where(moments.c.at < later))).all()
    assert (after, [row.id for row in before]) == ([], [1])


async def test_a_naive_time_is_refused(engine: AsyncEngine) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        async with engine.begin() as conn:
            await conn.execute(moments.insert().values(id=1, at=datetime(2026, 3, 1, 10, 0)))
