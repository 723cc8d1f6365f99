"""Fixtures shared by device-srv's tests: its schema, an in-memory repository, and
device-srv itself in this process; the database comes from micro.testing.fixtures."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import AsyncIterator, Callable, Sequence
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
from micro.testing.apps import config_folder, running_app
from micro.testing.fixtures import schema_fixture

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


schema = schema_fixture(MIGRATIONS, "device-srv")


@pytest.fixture
def sql_repository(engine: AsyncEngine) -> SqlDeviceRepository:
    return SqlDeviceRepository(engine)


DeviceSrvRunner = Callable[
    [dict[str, Any]], contextlib.AbstractAsyncContextManager["DevSvcAsyncStub"]
]
CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture
def device_config(sqlite_url: str) -> dict[str, Any]:
    """device-srv's own config file (its three devices) with gRPC and admin on free
    loopback ports, the test's database and no drain on shutdown."""
    config: dict[str, Any] = yaml.safe_load((CONFIG_DIR / "config.yaml").read_text())
    return {
        **config,
        "server": {"grpc": {"addr": "127.0.0.1:0"}},
        "shutdown": {"drain_delay": "0s", "grace_period": "1s"},
        "database": {"url": sqlite_url},
    }


@pytest.fixture
def run_device_srv(tmp_path: pathlib.Path) -> DeviceSrvRunner:
    """Runs device-srv in this process, composed as `python -m device_srv` does, with the
    given config as its config.yaml; yields a stub connected to its gRPC port."""

    @contextlib.asynccontextmanager
    async def run(config: dict[str, Any]) -> AsyncIterator[DevSvcAsyncStub]:
        config_dir = config_folder(tmp_path / "configs", config)
        async with running_app(NAME, DeviceSrvConfig, compose, config_dir=config_dir) as app:
            assert app.ctx is not None
            assert app.ctx.grpc_port is not None
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.ctx.grpc_port}") as channel:
                yield device_pb2_grpc.DevSvcStub(channel)

    return run


@pytest.fixture
async def device_stub(
    run_device_srv: DeviceSrvRunner, device_config: dict[str, Any]
) -> AsyncIterator[DevSvcAsyncStub]:
    async with run_device_srv(device_config) as stub:
        yield stub
