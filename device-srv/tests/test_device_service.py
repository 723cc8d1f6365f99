"""Re-seeding: device-srv follows its device list when the ConfigMap device-srv changes.

The ConfigMap lives in a real devcluster API server (its own process, over HTTPS).
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import grpc
import kubernetes.client
import pytest
import yaml

from api.device_srv.v1 import device_pb2
from devcluster.testing import RunningDevCluster, running_devcluster
from micro.testing import waiting

if TYPE_CHECKING:
    from api.device_srv.v1.device_pb2_grpc import DevSvcAsyncStub

    DeviceSrvRunner = Callable[[dict[str, Any]], AbstractAsyncContextManager[DevSvcAsyncStub]]

NAMESPACE = "default"
WAIT_S = 20.0


@pytest.fixture(scope="module")
def devcluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDevCluster]:
    with running_devcluster(tmp_path_factory.mktemp("devcluster")) as cluster:
        yield cluster


def _config_map(devices: list[dict[str, Any]]) -> kubernetes.client.V1ConfigMap:
    return kubernetes.client.V1ConfigMap(
        metadata=kubernetes.client.V1ObjectMeta(name="device-srv", labels={"app": "device-srv"}),
        data={"config.yaml": yaml.safe_dump({"devices": devices})},
    )


def _apply(cluster: RunningDevCluster, devices: list[dict[str, Any]]) -> None:
    with cluster.api_client() as api:
        core = kubernetes.client.CoreV1Api(api)
        try:
            core.replace_namespaced_config_map("device-srv", NAMESPACE, _config_map(devices))
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise
            core.create_namespaced_config_map(NAMESPACE, _config_map(devices))


async def _state(stub: DevSvcAsyncStub, name: str) -> bool | None:
    """The device's active flag, or None while it is unknown."""
    try:
        return (await stub.Get(device_pb2.DeviceName(name=name))).active
    except grpc.aio.AioRpcError as error:
        if error.code() is not grpc.StatusCode.NOT_FOUND:
            raise
        return None


def _rejections(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The config updates the service refused, as it logged them."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "micro.config" and "config update rejected" in r.getMessage()
    ]


async def _wait_for(stub: DevSvcAsyncStub, expected: dict[str, bool | None]) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        seen = {name: await _state(stub, name) for name in expected}
        if seen == expected:
            return
        assert time.monotonic() < deadline, f"still {seen}, expected {expected}"
        await asyncio.sleep(0.1)


async def test_a_changed_device_list_is_applied_and_unlisted_devices_stay(
    devcluster: RunningDevCluster,
    run_device_srv: DeviceSrvRunner,
    device_config: dict[str, Any],
    tmp_path: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="micro.config")
    _apply(devcluster, [{"name": "device4", "active": True}])
    remote = {
        "type": "k8s",
        "k8s": {"kubeconfig": str(devcluster.kubeconfig), "namespace": NAMESPACE},
    }
    async with run_device_srv({**device_config, "remote": remote}) as stub:
        await _wait_for(stub, {"device4": True, "device5": None})

        _apply(
            devcluster, [{"name": "device4", "active": False}, {"name": "device5", "active": True}]
        )
        await _wait_for(stub, {"device4": False, "device5": True})

        # A list naming a device twice is refused, so device5 stays active (had it been
        # applied, device5 would now be inactive); the next good list applies. The good
        # list is sent only once the bad one was rejected: sent sooner, both could be read
        # in one reload and the bad list never checked.
        _apply(
            devcluster, [{"name": "device5", "active": False}, {"name": "device5", "active": False}]
        )
        await waiting.eventually(
            lambda: any("listed more than once: device5" in line for line in _rejections(caplog)),
            "the rejection of the list naming device5 twice",
            limit_s=WAIT_S,
        )
        _apply(devcluster, [{"name": "device6", "active": True}])
        await _wait_for(stub, {"device4": False, "device5": True, "device6": True})
