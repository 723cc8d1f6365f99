"""The database engine and the ordered, versioned schema migrations applied at start.

Why not Alembic: this service has a handful of tables and no offline upgrade step, so an
ordered list of migrations applied in one transaction at start, recorded in a
schema_version table, is all it needs; on PostgreSQL an advisory lock taken inside that
transaction keeps replicas that start together from applying the same step twice.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    event,
    func,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


_meta = MetaData()
schema_version = Table(
    "schema_version",
    _meta,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(200), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)


def database_url(url: str, data_dir: str, file_name: str) -> str:
    """The configured URL, or a SQLite file in data_dir (created when missing)."""
    if url:
        return url
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{directory / file_name}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; busy_timeout waits instead of failing at once.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


async def open_database(url: str, migrations: Sequence[Migration], lock_name: str) -> AsyncEngine:
    """An engine on a database whose schema is at the newest version."""
    engine = create_async_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"),
                    {"key": zlib.crc32(lock_name.encode())},
                )
            await conn.run_sync(_apply_pending, migrations)
    except BaseException:
        await engine.dispose()
        raise
    return engine


def _apply_pending(conn: Connection, migrations: Sequence[Migration]) -> None:
    schema_version.create(conn, checkfirst=True)
    current = conn.execute(select(func.max(schema_version.c.version))).scalar() or 0
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version <= current:
            continue
        migration.apply(conn)
        conn.execute(
            schema_version.insert().values(
                version=migration.version,
                description=migration.description,
                applied_at=datetime.now(UTC),
            )
        )


def schema_versions(conn: Connection) -> list[int]:
    """The versions applied so far, oldest first."""
    return list(conn.execute(select(schema_version.c.version).order_by("version")).scalars())
