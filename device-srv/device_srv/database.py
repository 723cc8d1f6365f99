"""The device table and the engine that reaches it (SQLite file or PostgreSQL)."""

from __future__ import annotations

import pathlib

from sqlalchemy import Boolean, Column, MetaData, String, Table
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from device_srv.domain import NAME_MAX_LENGTH

metadata = MetaData()

devices_table = Table(
    "devices",
    metadata,
    Column("name", String(NAME_MAX_LENGTH), primary_key=True),
    Column("active", Boolean, nullable=False),
)


async def open_engine(url: str) -> AsyncEngine:
    """An engine for `url` with the schema in place (created when missing).

    A SQLite file's folder is created first so that a fresh checkout or an empty
    volume works without a manual step.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        pathlib.Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, pool_pre_ping=True)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine
