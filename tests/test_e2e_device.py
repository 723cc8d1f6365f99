"""The device flow end to end: device-srv and data-srv each as its own process.

data-srv finds device-srv through a static registry pointing at device-srv's port, as
`make run` wires them without a cluster. Every process started here is stopped here.
"""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

pytestmark = pytest.mark.e2e

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServiceProcess:
    """`python -m <package>` with its own config folder; logs go to a file."""

    def __init__(self, package: str, config: dict[str, Any], workdir: pathlib.Path) -> None:
        self.package = package
        self.config_dir = workdir / package / "configs"
        self.config_dir.mkdir(parents=True)
        (self.config_dir / "config.yaml").write_text(yaml.safe_dump(config))
        self.log_path = workdir / f"{package}.log"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready: Callable[[], bool]) -> None:
        env = {**os.environ, "MICRO_CONFIG_DIR": str(self.config_dir)}
        env.pop("MICRO_BIND_HOST", None)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.package],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready(ready)

    def stop(self) -> int | None:
        """SIGTERM (a graceful stop), then SIGKILL after a while; the exit code."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def _wait_ready(self, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.package} exited early:\n{self.log()}")
            if ready():
                return
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.package} was not ready in time:\n{self.log()}")


def grpc_serving(port: int) -> bool:
    """The gRPC health check of the whole server answers SERVING."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1.0
            )
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def http_ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


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
        device_grpc, data_http = _free_port(), _free_port()
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
        flow.device.start(flow.device_ready)
        flow.data.start(flow.data_ready)
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
