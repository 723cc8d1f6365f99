"""Fixtures shared by device-srv's tests."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import grpc
import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine

from api.device_srv.v1 import device_pb2_grpc
from device_srv.config import DeviceSrvConfig
from device_srv.domain import Device
from device_srv.migrations import MIGRATIONS
from device_srv.repository import DeviceRepository, SqlDeviceRepository
from device_srv.service import NAME, compose
from micro.app import App
from micro.db import open_database
from micro.testing.postgres import throwaway_postgres_or_skip

if TYPE_CHECKING:
    from api.device_srv.v1.device_pb2_grpc import DevSvcAsyncStub


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
    engine = await open_database(sqlite_url, MIGRATIONS, "device-srv")
    yield engine
    await engine.dispose()


@pytest.fixture
def sql_repository(sqlite_engine: AsyncEngine) -> SqlDeviceRepository:
    return SqlDeviceRepository(sqlite_engine)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server for this session, or a skip."""
    with throwaway_postgres_or_skip(prefix="device-srv-postgres-") as url:
        yield url


DeviceSrvRunner = Callable[
    [dict[str, Any]], contextlib.AbstractAsyncContextManager["DevSvcAsyncStub"]
]


def base_config(database_url: str) -> dict[str, Any]:
    """A local config: gRPC on a free loopback port, static registry, the three devices."""
    return {
        "server": {"grpc": {"addr": "127.0.0.1:0"}},
        "registry": {"type": "static"},
        "shutdown": {"drain_delay": "0s", "grace_period": "1s"},
        "database": {"url": database_url},
        "devices": [
            {"name": "device1", "active": True},
            {"name": "device2", "active": True},
            {"name": "device3", "active": False},
        ],
    }


@pytest.fixture
def device_config(sqlite_url: str) -> dict[str, Any]:
    return base_config(sqlite_url)


@pytest.fixture
def run_device_srv(tmp_path: pathlib.Path) -> DeviceSrvRunner:
    """Runs device-srv in this process, composed as `python -m device_srv` does, with the
    given config as its config.yaml; yields a stub connected to its gRPC port."""

    @contextlib.asynccontextmanager
    async def run(config: dict[str, Any]) -> AsyncIterator[DevSvcAsyncStub]:
        config_dir = tmp_path / "configs"
        config_dir.mkdir(exist_ok=True)
        (config_dir / "config.yaml").write_text(yaml.safe_dump(config))
        app = App(NAME, DeviceSrvConfig, compose, config_dir=config_dir, env={})
        await app.start()
        try:
            assert app.ctx is not None
            assert app.ctx.grpc_port is not None
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.ctx.grpc_port}") as channel:
                yield device_pb2_grpc.DevSvcStub(channel)
        finally:
            await app.shutdown()

    return run


@pytest.fixture
async def device_stub(
    run_device_srv: DeviceSrvRunner, device_config: dict[str, Any]
) -> AsyncIterator[DevSvcAsyncStub]:
    async with run_device_srv(device_config) as stub:
        yield stub
