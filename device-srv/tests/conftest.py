"""Fixtures shared by device-srv's tests."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from device_srv.database import open_engine
from device_srv.domain import Device
from device_srv.repository import DeviceRepository, SqlDeviceRepository


class InMemoryDeviceRepository:
    """A DeviceRepository kept in a dict, so the use cases can be tested on their own."""

    def __init__(self) -> None:
        self._rows: dict[str, Device] = {}

    async def get(self, name: str) -> Device | None:
        return self._rows.get(name)

    async def list_after(self, after: str | None, limit: int) -> list[Device]:
        names = sorted(n for n in self._rows if after is None or n > after)
        return [self._rows[n] for n in names[:limit]]

    async def upsert(self, devices: Sequence[Device]) -> None:
        for device in devices:
            self._rows[device.name] = device


@pytest.fixture
def memory_repository() -> DeviceRepository:
    return InMemoryDeviceRepository()


@pytest.fixture
def sqlite_url(tmp_path: pathlib.Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/db/devices.db"


@pytest.fixture
async def sqlite_engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await open_engine(sqlite_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sql_repository(sqlite_engine: AsyncEngine) -> SqlDeviceRepository:
    return SqlDeviceRepository(sqlite_engine)
