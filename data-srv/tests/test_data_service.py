"""data.retry_after follows the ConfigMap data-srv while data-srv runs.

The ConfigMap lives in a real devcluster API server (its own process, over HTTPS).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import kubernetes.client
import pytest
import yaml

from data_srv.service import NAME
from devcluster.testing import RunningDevCluster, running_devcluster
from micro.testing import waiting

from .conftest import DataSrvRunner

NAMESPACE = "default"
SHORT_NAME = NAME.rsplit(".", 1)[-1]
WAIT_S = 20.0


@pytest.fixture(scope="module")
def devcluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDevCluster]:
    with running_devcluster(tmp_path_factory.mktemp("devcluster")) as cluster:
        yield cluster


def _put_config_map(cluster: RunningDevCluster, retry_after: str) -> None:
    body = kubernetes.client.V1ConfigMap(
        metadata=kubernetes.client.V1ObjectMeta(name=SHORT_NAME, labels={"app": SHORT_NAME}),
        data={"config.yaml": yaml.safe_dump({"data": {"retry_after": retry_after}})},
    )
    with cluster.api_client() as api:
        core = kubernetes.client.CoreV1Api(api)
        try:
            core.replace_namespaced_config_map(SHORT_NAME, NAMESPACE, body)
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise
            core.create_namespaced_config_map(NAMESPACE, body)


async def test_retry_after_follows_a_configmap_change(
    devcluster: RunningDevCluster,
    run_data_srv: DataSrvRunner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="micro.config")
    _put_config_map(devcluster, "4s")
    remote = {
        "type": "k8s",
        "k8s": {"kubeconfig": str(devcluster.kubeconfig), "namespace": NAMESPACE},
        "secrets": [],
    }
    # Bound but never listening: every connection to it is refused, so device-srv is down.
    with socket.socket() as unreachable:
        unreachable.bind(("127.0.0.1", 0))
        port = unreachable.getsockname()[1]
        async with run_data_srv(f"grpc://127.0.0.1:{port}", remote=remote) as data_srv:
            before = await data_srv.get("/data/device1")
            assert before.status_code == 503
            assert before.headers["retry-after"] == "4"

            _put_config_map(devcluster, "9s")
            await waiting.eventually(
                lambda: any(r.getMessage() == "config reloaded" for r in caplog.records),
                "data-srv to take the ConfigMap update",
                limit_s=WAIT_S,
            )
            after = await data_srv.get("/data/device1")
            assert after.status_code == 503
            assert after.headers["retry-after"] == "9"
