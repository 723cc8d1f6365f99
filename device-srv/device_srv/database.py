"""The device table and the engine that reaches it (SQLite file or PostgreSQL)."""

from __future__ import annotations

import pathlib
import zlib
from typing import Any

from sqlalchemy import Boolean, Column, MetaData, String, Table, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateTable

from device_srv.domain import NAME_MAX_LENGTH

metadata = MetaData()

devices_table = Table(
    "devices",
    metadata,
    Column("name", String(NAME_MAX_LENGTH), primary_key=True),
    Column("active", Boolean, nullable=False),
)

# Replicas starting together create the schema one at a time (PostgreSQL).
_SCHEMA_LOCK_KEY = zlib.crc32(b"device-srv schema")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Replicas on one file (a local run): WAL lets readers run beside the writer, and
    # busy_timeout makes a writer wait for another instead of failing at once.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")  # first: switching to WAL takes a lock
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


async def open_engine(url: str) -> AsyncEngine:
    """An engine for `url` with the schema in place (created when missing).

    A SQLite file's folder is created first so that a fresh checkout or an empty
    volume works without a manual step.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        pathlib.Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY}
                )
            # IF NOT EXISTS, not check-then-create: other replicas may be here too.
            for table in metadata.sorted_tables:
                await conn.execute(CreateTable(table, if_not_exists=True))
    except BaseException:
        await engine.dispose()
        raise
    return engine
