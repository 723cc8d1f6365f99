"""A service's database for its tests (needs the `db` extra of micro)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from micro.db import Migration, open_database


@asynccontextmanager
async def opened_by_two_replicas(
    url: str, migrations: Sequence[Migration], lock_name: str, tables: Sequence[str]
) -> AsyncIterator[AsyncEngine]:
    """An engine on `url` once two replicas have opened it at the same moment (the
    schema lock lets one of them apply the migrations); afterwards the service's `tables`
    and schema_version are dropped, so the next test starts from an empty database."""
    engines = await asyncio.gather(
        open_database(url, migrations, lock_name), open_database(url, migrations, lock_name)
    )
    await engines[1].dispose()
    try:
        yield engines[0]
        async with engines[0].begin() as conn:
            await conn.execute(text(f"DROP TABLE {', '.join([*tables, 'schema_version'])}"))
    finally:
        await engines[0].dispose()
