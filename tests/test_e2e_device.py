"""The device flow end to end: device-srv and data-srv each as its own process.

data-srv finds device-srv through a static registry pointing at device-srv's port, as
`make run` wires them without a cluster. Every process started here is stopped here.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import httpx
import pytest

from micro.testing.processes import ServiceProcess, free_port, grpc_serving, http_ready

pytestmark = pytest.mark.e2e


def _device_config(grpc_port: int, db: pathlib.Path) -> dict[str, Any]:
    return {
        "server": {"grpc": {"addr": f"127.0.0.1:{grpc_port}"}},
        "registry": {"type": "static"},
        "shutdown": {"drain_delay": "0s", "grace_period": "2s"},
        "database": {"url": f"sqlite+aiosqlite:///{db}"},
        "devices": [
            {"name": "device1", "active": True},
            {"name": "device2", "active": True},
            {"name": "device3", "active": False},
        ],
    }


def _data_config(http_port: int, device_grpc_port: int) -> dict[str, Any]:
    return {
        "server": {"http": {"addr": f"127.0.0.1:{http_port}", "timeout": "5s"}},
        "client": {"grpc": {"timeout": "1s", "max_attempts": 2}},
        "registry": {
            "type": "static",
            "services": [
                {
                    "name": "go-micro.device-srv",
                    "endpoints": [f"grpc://127.0.0.1:{device_grpc_port}"],
                }
            ],
        },
        "shutdown": {"drain_delay": "0s", "grace_period": "2s"},
        "data": {"retry_after": "3s"},
    }


class DeviceFlow:
    def __init__(self, workdir: pathlib.Path) -> None:
        # Fixed ports, not 0: device-srv restarts on the same one and data-srv's static
        # registry points at it.
        device_grpc, data_http = free_port(), free_port()
        self.data_url = f"http://127.0.0.1:{data_http}"
        self.device_ready = lambda: grpc_serving(device_grpc)
        self.data_ready = lambda: http_ready(f"{self.data_url}/readyz")
        self.device = ServiceProcess(
            "device_srv", _device_config(device_grpc, workdir / "devices.db"), workdir
        )
        self.data = ServiceProcess("data_srv", _data_config(data_http, device_grpc), workdir)

    def get(self, path: str, **headers: str) -> httpx.Response:
        return httpx.get(self.data_url + path, headers=headers, timeout=10.0)


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeviceFlow]:
    flow = DeviceFlow(tmp_path_factory.mktemp("device-flow"))
    try:
        # data-srv's static registry needs no running device-srv: both start together.
        with futures.ThreadPoolExecutor(2) as pool:
            starts = [
                pool.submit(flow.device.start, flow.device_ready),
                pool.submit(flow.data.start, flow.data_ready),
            ]
        for start in starts:
            start.result()
        yield flow
    finally:
        flow.data.stop()
        flow.device.stop()


def test_known_devices_answer_json(flow: DeviceFlow) -> None:
    reply = flow.get("/data/device1")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json() == {"device": "device1", "active": True}
    assert flow.get("/data/device3").json() == {"device": "device3", "active": False}


def test_text_plain_is_the_original_reply(flow: DeviceFlow) -> None:
    reply = flow.get("/data/device1", accept="text/plain")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    assert reply.text == "Device active:  true\nOh and, no data for you!\n"


def test_unknown_device_is_404(flow: DeviceFlow) -> None:
    reply = flow.get("/data/device9")
    assert reply.status_code == 404
    assert reply.json()["code"] == "NOT_FOUND"
    assert "device9" in reply.json()["message"]


@pytest.mark.parametrize("name", ["x" * 64, "d%C3%A9vice", "dev%20ice"])
def test_invalid_name_is_400(flow: DeviceFlow, name: str) -> None:
    reply = flow.get(f"/data/{name}")
    assert reply.status_code == 400
    assert reply.json()["code"] == "INVALID_ARGUMENT"
    assert reply.json()["field"] == "name"


def test_device_srv_stopped_is_503_then_recovers(flow: DeviceFlow) -> None:
    assert flow.device.stop() == 0  # a graceful stop exits 0
    reply = flow.get("/data/device1")
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "3"
    assert reply.json()["code"] == "UNAVAILABLE"

    flow.device.start(flow.device_ready)  # same port, same database
    deadline = time.monotonic() + 20.0
    while (reply := flow.get("/data/device1")).status_code != 200:
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.2)
    assert reply.json() == {"device": "device1", "active": True}
