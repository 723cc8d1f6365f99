"""The fixtures that the tests of every service share, as a pytest plugin: the root
conftest.py loads it for every test folder, so no conftest.py copies them. A service's
conftest.py names its database schema, and `engine` opens it:

    schema = schema_fixture(MIGRATIONS, "user-srv")
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from micro.testing.grpc_loopback import loopback_grpc_channel
from micro.testing.postgres import throwaway_postgres_or_skip
from micro.transport.grpc import AddToServer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from micro.db import Migration

ServeGrpc = Callable[[AddToServer, Any], Awaitable[grpc.aio.Channel]]
_databases = itertools.count(1)
# argon2id parameters cheap enough for tests on a busy 2-core box, as keyword arguments of
# a password hasher's config (user-srv's Argon2Config); production keeps the defaults.
FAST_ARGON2 = {"time_cost": 1, "memory_kib": 1024, "parallelism": 1, "max_concurrency": 2}


@dataclass(frozen=True)
class Schema:
    """A service's migrations and the name of its schema (micro.db.open_database)."""

    migrations: Sequence[Migration]
    name: str


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file in a folder that does not exist yet: micro.db creates it."""
    return f"sqlite+aiosqlite:///{tmp_path}/db/service.db"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """One throwaway PostgreSQL server for the session, or a skip: its admin URL."""
    with throwaway_postgres_or_skip(prefix="micro-postgres-") as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A new, empty database on the session's server, dropped after the test: the tests
    of several services share the server, and no test sees another's tables."""
    from sqlalchemy import make_url

    name = f"test_{next(_databases)}"
    _on_server(postgres_server, f"CREATE DATABASE {name}")
    yield make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    _on_server(postgres_server, f"DROP DATABASE {name} WITH (FORCE)")


def _on_server(url: str, statement: str) -> None:
    """One statement on the server, on an event loop of its own in a thread: a sync
    fixture may be set up while a test's loop runs (request.getfixturevalue)."""
    # Imported here: sqlalchemy and asyncpg come with micro's `db` extra.
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> None:
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, run()).result()


def schema_fixture(migrations: Sequence[Migration], name: str) -> Callable[[], Schema]:
    """The `schema` fixture of a service's conftest.py: its migrations and its name."""

    @pytest.fixture(name="schema")
    def service_schema() -> Schema:
        return Schema(migrations, name)

    return service_schema


@pytest.fixture
def schema() -> Schema:
    """Overridden by a service's conftest.py (schema_fixture); `engine` needs it."""
    pytest.fail("set `schema = schema_fixture(...)` in the conftest.py of tests using `engine`")


@pytest.fixture
async def engine(sqlite_url: str, schema: Schema) -> AsyncIterator[AsyncEngine]:
    """The service's schema, migrated, on a new SQLite file; disposed after the test."""
    # Imported here: micro.db needs the `db` extra, which services without a database skip.
    from micro.db import open_database

    opened = await open_database(sqlite_url, schema.migrations, schema.name)
    yield opened
    await opened.dispose()


@pytest.fixture
async def postgres_engine(postgres_url: str, schema: Schema) -> AsyncIterator[AsyncEngine]:
    """The service's schema on the test's PostgreSQL database, once two replicas opened it
    at the same moment (the schema lock lets one of them apply the migrations)."""
    from micro.db import open_database

    engines = await asyncio.gather(
        *(open_database(postgres_url, schema.migrations, schema.name) for _ in range(2))
    )
    await engines[1].dispose()
    try:
        yield engines[0]
    finally:
        await engines[0].dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_engine(request: pytest.FixtureRequest) -> AsyncEngine:
    """`engine`, then `postgres_engine`: the same test on each kind of database, where
    the database's own locking decides the outcome."""
    name = "engine" if request.param == "sqlite" else "postgres_engine"
    engine: AsyncEngine = request.getfixturevalue(name)
    return engine


@pytest.fixture
async def serve_grpc() -> AsyncIterator[ServeGrpc]:
    """`channel = await serve_grpc(add_XServicer_to_server, servicer)`: the servicer on
    the framework's real gRPC server on a loopback port, and a channel to it; both are
    closed after the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def serve(add_to_server: AddToServer, servicer: Any) -> grpc.aio.Channel:
            return await stack.enter_async_context(loopback_grpc_channel((add_to_server, servicer)))

        yield serve
