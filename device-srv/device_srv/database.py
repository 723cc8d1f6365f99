"""The devices table as the repository reads it, and the engine that reaches it (SQLite
file or PostgreSQL) with device-srv's schema in place."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, MetaData, String, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from device_srv.domain import NAME_MAX_LENGTH
from device_srv.migrations import MIGRATIONS
from micro.db import open_database

metadata = MetaData()

devices_table = Table(
    "devices",
    metadata,
    Column("name", String(NAME_MAX_LENGTH), primary_key=True),
    Column("active", Boolean, nullable=False),
)


async def open_engine(url: str) -> AsyncEngine:
    """An engine for `url` whose schema is at the newest version (see migrations.py)."""
    return await open_database(url, MIGRATIONS, "device-srv")
