"""data-srv's real HTTP server against a real device-srv, both in this process on loopback."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

import httpx
import pytest

import device_srv as device_srv_package
from data_srv.config import DataSrvConfig
from data_srv.service import NAME as DATA_SRV
from data_srv.service import compose as compose_data_srv
from device_srv.config import DeviceSrvConfig
from device_srv.service import NAME as DEVICE_SRV
from device_srv.service import compose as compose_device_srv
from micro.app import App
from micro.testing.apps import config_folder, running_app

RETRY_AFTER_S = 4
DEVICE_SRV_CONFIGS = pathlib.Path(device_srv_package.__file__).resolve().parents[1] / "configs"


@pytest.fixture
def retry_after_s() -> int:
    """The Retry-After data-srv is configured with in these tests."""
    return RETRY_AFTER_S


@pytest.fixture
async def device_srv(sqlite_url: str) -> AsyncIterator[App[DeviceSrvConfig]]:
    """device-srv on its own config file (its three devices), on free loopback ports and
    the test's database; a test may stop it first."""
    env = {
        "MICRO__SERVER__GRPC__ADDR": "127.0.0.1:0",
        "MICRO__DATABASE__URL": sqlite_url,
        "MICRO__SHUTDOWN__DRAIN_DELAY": "0s",
        "MICRO__SHUTDOWN__GRACE_PERIOD": "1s",
    }
    async with running_app(
        DEVICE_SRV, DeviceSrvConfig, compose_device_srv, config_dir=DEVICE_SRV_CONFIGS, env=env
    ) as app:
        yield app


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
        config_dir = config_folder(tmp_path / "data-srv", config)
        async with running_app(
            DATA_SRV, DataSrvConfig, compose_data_srv, config_dir=config_dir
        ) as app:
            assert app.ctx is not None
            base_url = f"http://127.0.0.1:{app.ctx.http_port}"
            async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
                yield client

    return run


@pytest.fixture
async def data_srv(
    run_data_srv: DataSrvRunner, device_srv: App[DeviceSrvConfig]
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for data-srv, which finds the device_srv fixture's instance."""
    assert device_srv.ctx is not None
    async with run_data_srv(f"grpc://127.0.0.1:{device_srv.ctx.grpc_port}") as client:
        yield client
