"""Data access for devices: the Protocol the use cases need and its SQL implementation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import Boolean, Column, MetaData, String, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from device_srv.domain import NAME_MAX_LENGTH, Device


class DeviceRepository(Protocol):
    async def get(self, name: str) -> Device | None: ...

    async def list_after(self, after: str | None, limit: int) -> list[Device]:
        """Up to `limit` devices ordered by name, starting after the name `after`."""
        ...

    async def upsert(self, devices: Sequence[Device]) -> None:
        """Insert these devices, or update the ones that exist; others are untouched."""
        ...


_meta = MetaData()
devices_table = Table(
    "devices",
    _meta,
    Column("name", String(NAME_MAX_LENGTH), primary_key=True),
    Column("active", Boolean, nullable=False),
)


class SqlDeviceRepository:
    """DeviceRepository on SQLAlchemy Core: SQLite or PostgreSQL."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, name: str) -> Device | None:
        query = select(devices_table.c.name, devices_table.c.active).where(
            devices_table.c.name == name
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else Device(name=row.name, active=row.active)

    async def list_after(self, after: str | None, limit: int) -> list[Device]:
        query = (
            select(devices_table.c.name, devices_table.c.active)
            .order_by(devices_table.c.name)
            .limit(limit)
        )
        if after is not None:
            query = query.where(devices_table.c.name > after)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [Device(name=row.name, active=row.active) for row in rows]

    async def upsert(self, devices: Sequence[Device]) -> None:
        if not devices:
            return
        values = [{"name": d.name, "active": d.active} for d in devices]
        # ON CONFLICT keeps concurrent seeding by several replicas free of key errors.
        insert = (
            postgresql.insert(devices_table)
            if self._engine.dialect.name == "postgresql"
            else sqlite.insert(devices_table)
        )
        statement = insert.values(values)
        statement = statement.on_conflict_do_update(
            index_elements=[devices_table.c.name],
            set_={"active": statement.excluded.active},
        )
        async with self._engine.begin() as conn:
            await conn.execute(statement)
