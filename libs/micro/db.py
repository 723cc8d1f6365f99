"""A service's database: its config section, an async engine for SQLite or PostgreSQL,
the ordered, versioned schema migrations applied at start, and a UTC timestamp column.

A service opens its database in one line of its composition root:
`engine = await open_service_database(ctx, cfg.database, MIGRATIONS)`.

Why not Alembic: the services have a handful of tables and no offline upgrade step, so
an ordered list of migrations applied in one transaction at start, recorded in a
schema_version table, is all they need. Replicas that start together must not apply a
step twice: on PostgreSQL an advisory lock taken inside that transaction orders them, on
SQLite the transaction starts with the file's write lock (BEGIN IMMEDIATE).

Needs the `db` extra of micro (SQLAlchemy, aiosqlite, asyncpg).
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from micro.config.model import Section
from micro.config.reload import Reload
from micro.registry.names import short_name

if TYPE_CHECKING:
    from micro.app import ServiceContext

# How long a SQLite writer waits for another one (a second replica on the same file)
# before it gives up with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000

# The async driver used when a URL names only the database kind.
_ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}


@dataclass(frozen=True)
class Migration:
    """One schema step. `apply` runs inside the migration transaction; it should keep its
    own table definitions so that later changes to a repository never rewrite history."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def create_tables(define: Callable[[MetaData], object]) -> Callable[[Connection], None]:
    """A step's `apply` that creates the tables `define` declares on a MetaData of the
    step's own; a table that already exists (a file from before versioned migrations)
    is left as it is."""

    def apply(conn: Connection) -> None:
        meta = MetaData()
        define(meta)
        meta.create_all(conn)

    return apply


_meta = MetaData()
schema_version = Table(
    "schema_version",
    _meta,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(200), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)


class DatabaseConfig(Section):
    """The `database` section of every service with a database."""

    reload_policy = Reload.RESTART  # the engine is opened once, at start

    # A secret: a PostgreSQL URL's password must not show in config reprs.
    url: SecretStr = SecretStr("")
    """Empty: the SQLite file <data_dir>/<service short name>.db. A PostgreSQL URL
    (postgresql+asyncpg://...) usually comes from the Secret <service>-database."""
    data_dir: str = ".data"
    """Folder of the service's local files (the SQLite file when url is empty), relative
    to the working directory."""

    def url_for(self, name: str) -> str:
        """The configured URL, or the SQLite file `<name>.db` in data_dir."""
        url = self.url.get_secret_value()
        return url or f"sqlite+aiosqlite:///{Path(self.data_dir) / name}.db"


async def open_service_database(
    ctx: ServiceContext[Any], config: DatabaseConfig, migrations: Sequence[Migration]
) -> AsyncEngine:
    """The service's engine with its schema at the newest version, disposed at shutdown.

    The service's short name ("go-micro.user-srv" -> "user-srv") names its SQLite file
    and its schema lock.
    """
    name = short_name(ctx.name)
    engine = await open_database(config.url_for(name), migrations, name)
    ctx.on_shutdown(engine.dispose)
    return engine


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp column written and read as an aware UTC datetime.

    SQLite keeps no zone: it would store an aware value's wall time as it is and hands
    back naive values, so values are converted to UTC on the way in and marked UTC on
    the way out. A naive value is refused: its zone would be a guess.
    """

    impl = DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"a naive datetime cannot be stored as UTC: {value!r}")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def create_engine(url: str) -> AsyncEngine:
    """An async engine for `url`, PostgreSQL (asyncpg) or a SQLite file.

    A SQLite file's folder is created when missing, so that a fresh checkout or an empty
    volume works without a manual step; its connections use a busy timeout (several
    processes may share the file) and foreign keys. open_database also switches the file
    to WAL.
    """
    parsed = _with_async_driver(make_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(parsed, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _with_async_driver(url: URL) -> URL:
    backend = url.get_backend_name()
    if "+" in url.drivername or backend not in _ASYNC_DRIVERS:
        return url
    return url.set(drivername=f"{backend}+{_ASYNC_DRIVERS[backend]}")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


async def use_wal(engine: AsyncEngine) -> None:
    """Switch a SQLite file to WAL (readers beside the writer); the file keeps the mode.

    While another connection switches the same new file, SQLite answers "database is
    locked" at once instead of waiting out its busy timeout (waiting could deadlock), so
    this tries again until that timeout has passed.
    """
    if engine.dialect.name != "sqlite":
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            return
        except OperationalError as error:
            if "database is locked" not in str(error) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.01)


async def open_database(url: str, migrations: Sequence[Migration], lock_name: str) -> AsyncEngine:
    """An engine on a database whose schema is at the newest version.

    lock_name names the schema (the service) for PostgreSQL's advisory lock.
    """
    engine = create_engine(url)
    try:
        await use_wal(engine)
        await migrate(engine, migrations, lock_name)
    except BaseException:
        await engine.dispose()
        raise
    return engine


async def migrate(engine: AsyncEngine, migrations: Sequence[Migration], lock_name: str) -> None:
    """Apply the migrations newer than the recorded version, oldest first, in one
    transaction that holds the schema lock; the ones already applied are skipped."""
    ordered = _checked(migrations)
    async with engine.begin() as conn:
        await _lock_schema(conn, lock_name)
        await conn.run_sync(_apply_pending, ordered)


def _checked(migrations: Sequence[Migration]) -> list[Migration]:
    versions = [m.version for m in migrations]
    if any(v < 1 for v in versions):
        raise ValueError(f"migration versions start at 1: {sorted(versions)}")
    twice = sorted({v for v in versions if versions.count(v) > 1})
    if twice:
        raise ValueError(f"migration versions listed more than once: {twice}")
    return sorted(migrations, key=lambda m: m.version)


async def _lock_schema(conn: AsyncConnection, lock_name: str) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(lock_name.encode())}
        )
    elif conn.dialect.name == "sqlite":
        # The driver would begin only at the first INSERT, after the version was read
        # and tables created outside any transaction; take the write lock up front.
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


def _apply_pending(conn: Connection, migrations: Sequence[Migration]) -> None:
    schema_version.create(conn, checkfirst=True)
    current = conn.execute(select(func.max(schema_version.c.version))).scalar() or 0
    for migration in migrations:
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
