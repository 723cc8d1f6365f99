"""data-srv's real HTTP server against a real device-srv, both in this process on loopback."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

import httpx
import pytest
import yaml

from data_srv.config import DataSrvConfig
from data_srv.service import NAME as DATA_SRV
from data_srv.service import compose as compose_data_srv
from device_srv.config import DeviceSrvConfig
from device_srv.service import NAME as DEVICE_SRV
from device_srv.service import compose as compose_device_srv
from micro.app import App

RETRY_AFTER_S = 4


@pytest.fixture
def retry_after_s() -> int:
    """The Retry-After data-srv is configured with in these tests."""
    return RETRY_AFTER_S


def _config_dir(folder: pathlib.Path, config: dict[str, Any]) -> pathlib.Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


@pytest.fixture
async def device_srv(tmp_path: pathlib.Path) -> AsyncIterator[App[DeviceSrvConfig]]:
    config = {
        "server": {"grpc": {"addr": "127.0.0.1:0"}},
        "registry": {"type": "static"},
        "shutdown": {"drain_delay": "0s", "grace_period": "1s"},
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/devices.db"},
        "devices": [
            {"name": "device1", "active": True},
            {"name": "device2", "active": True},
            {"name": "device3", "active": False},
        ],
    }
    config_dir = _config_dir(tmp_path / "device-srv", config)
    app = App(DEVICE_SRV, DeviceSrvConfig, compose_device_srv, config_dir=config_dir, env={})
    await app.start()
    try:
        yield app
    finally:
        await app.shutdown()  # a second shutdown (after a test stopped it) is harmless


class DataSrvRunner(Protocol):
    def __call__(
        self, device_endpoint: str, *, remote: dict[str, Any] | None = None
    ) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]: ...


@pytest.fixture
def run_data_srv(tmp_path: pathlib.Path) -> DataSrvRunner:
    """Runs data-srv in this process with device-srv's gRPC endpoint in a static registry
    (and, given `remote`, that remote config section); yields an HTTP client for it."""

    @contextlib.asynccontextmanager
    async def run(
        device_endpoint: str, *, remote: dict[str, Any] | None = None
    ) -> AsyncIterator[httpx.AsyncClient]:
        config: dict[str, Any] = {
            "server": {"http": {"addr": "127.0.0.1:0", "timeout": "5s"}},
            "client": {"grpc": {"timeout": "1s", "max_attempts": 2}},
            "registry": {
                "type": "static",
                "services": [{"name": DEVICE_SRV, "endpoints": [device_endpoint]}],
            },
            "shutdown": {"drain_delay": "0s", "grace_period": "1s"},
            "data": {"retry_after": f"{RETRY_AFTER_S}s"},
        }
        if remote is not None:
            config["remote"] = remote
        config_dir = _config_dir(tmp_path / "data-srv", config)
        app = App(DATA_SRV, DataSrvConfig, compose_data_srv, config_dir=config_dir, env={})
        await app.start()
        try:
            assert app.ctx is not None
            base_url = f"http://127.0.0.1:{app.ctx.http_port}"
            async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
                yield client
        finally:
            await app.shutdown()

    return run


@pytest.fixture
async def data_srv(
    run_data_srv: DataSrvRunner, device_srv: App[DeviceSrvConfig]
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for data-srv, which finds the device_srv fixture's instance."""
    assert device_srv.ctx is not None
    async with run_data_srv(f"grpc://127.0.0.1:{device_srv.ctx.grpc_port}") as client:
        yield client
