"""Shared fixtures: one devcluster API server process per test session, a fresh
namespace per test. Other suites do the same with `devcluster.testing.running_devcluster`."""

from __future__ import annotations

import pathlib
import uuid
from collections.abc import Iterator

import kubernetes.client
import pytest

from devcluster.testing import RunningDevCluster, running_devcluster


@pytest.fixture(scope="session")
def devcluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDevCluster]:
    state_dir: pathlib.Path = tmp_path_factory.mktemp("devcluster")
    with running_devcluster(state_dir) as cluster:
        yield cluster


@pytest.fixture
def api(devcluster: RunningDevCluster) -> Iterator[kubernetes.client.ApiClient]:
    with devcluster.api_client() as client:
        yield client


@pytest.fixture
def core(api: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api)


@pytest.fixture
def namespace(core: kubernetes.client.CoreV1Api) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(
        kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name))
    )
    yield name
    try:
        core.delete_namespace(name)
    except kubernetes.client.ApiException as error:
        if error.status != 404:
            raise
