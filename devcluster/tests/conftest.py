"""Shared fixtures: one devcluster API server process per test session, a fresh
namespace per test. Other suites do the same with `devcluster.testing.running_devcluster`."""

from __future__ import annotations

import json
import pathlib
import ssl
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import kubernetes.client
import pytest

# pytest's importlib mode names this folder's modules "devcluster.tests.*" and, to do so,
# may bind the name "devcluster" to the member folder (a namespace package) before the
# package itself was imported; bind the name back to the real package.
if getattr(sys.modules.get("devcluster"), "__file__", "") is None:
    del sys.modules["devcluster"]

from devcluster.runner.testing import RunningNode, running_node
from devcluster.testing import RunningDevCluster, running_devcluster


@pytest.fixture(scope="session")
def runner_images() -> pathlib.Path:
    """The runner tests' images file: their pods run the small server in runner_testapp.py."""
    return pathlib.Path(__file__).resolve().parent / "runner_images.yaml"


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory,
    runner_images: pathlib.Path,
    request: pytest.FixtureRequest,
) -> Iterator[RunningNode]:
    """One `python -m devcluster run` for a runner test module."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    with running_node(tmp_path_factory.mktemp(name), images=runner_images) as running:
        yield running


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


@pytest.fixture
def http(devcluster: RunningDevCluster) -> Iterator[httpx.Client]:
    """A raw HTTPS client (admin) for stream and wire-level details."""
    with httpx.Client(
        base_url=devcluster.url,
        verify=ssl.create_default_context(cafile=str(devcluster.ca_file)),
        headers={"Authorization": f"Bearer {devcluster.admin_token}"},
        timeout=30,
    ) as client:
        yield client


@pytest.fixture
def server_log_since(devcluster: RunningDevCluster) -> Callable[[], str]:
    """What the API server has logged since the test began (the log RunningDevCluster
    keeps in its state dir)."""
    log = devcluster.state_dir / "apiserver.log"
    start = log.stat().st_size

    def read() -> str:
        with log.open("rb") as lines:
            lines.seek(start)
            return lines.read().decode(errors="replace")

    return read


WatchReader = Callable[..., list[dict[str, Any]]]


@pytest.fixture
def watch(http: httpx.Client) -> WatchReader:
    """Read newline-delimited watch events from `path` until the server closes the stream
    or `until` events have arrived. `on_open()` runs once the watch is open (the server
    answers 200 after registering it), before the first event is read."""

    def read(
        path: str,
        until: int | None = None,
        on_open: Callable[[], None] | None = None,
        **params: str,
    ) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        with http.stream("GET", path, params={"watch": "true", **params}) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("application/json")
            if on_open is not None:
                on_open()
            for line in response.iter_lines():
                if line:
                    events.append(json.loads(line))
                if until is not None and len(events) >= until:
                    break
        return events

    return read
