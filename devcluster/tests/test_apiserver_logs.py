"""pods/{name}/log, read from the files the pod runner writes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from kubernetes.client import ApiException

from devcluster.apiserver.logs import log_path
from devcluster.testing import RunningDevCluster, body


def _pod(core: Any, namespace: str, *containers: str) -> None:
    core.create_namespaced_pod(
        namespace,
        body(
            {
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": c, "image": "i:1"} for c in containers]},
            }
        ),
    )


def test_log_reads_the_container_file(
    core: Any, devcluster: RunningDevCluster, namespace: str
) -> None:
    _pod(core, namespace, "main")
    path = log_path(devcluster.state_dir, namespace, "p", "main")
    path.parent.mkdir(parents=True)
    path.write_text("one\ntwo\nthree\n")
    assert core.read_namespaced_pod_log("p", namespace) == "one\ntwo\nthree\n"
    assert core.read_namespaced_pod_log("p", namespace, tail_lines=2) == "two\nthree\n"
    assert core.read_namespaced_pod_log("p", namespace, limit_bytes=3) == "one"


def test_previous_log_is_the_instance_before(
    core: Any, devcluster: RunningDevCluster, namespace: str
) -> None:
    _pod(core, namespace, "main")
    path = log_path(devcluster.state_dir, namespace, "p", "main")
    path.parent.mkdir(parents=True)
    path.write_text("second run\n")
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod_log("p", namespace, previous=True)
    assert missing.value.status == 400
    assert 'previous terminated container \\"main\\" in pod \\"p\\" not found' in str(
        missing.value.body
    )
    path.with_suffix(".previous.log").write_text("first run\ncrashed\n")
    assert core.read_namespaced_pod_log("p", namespace, previous=True) == "first run\ncrashed\n"
    assert core.read_namespaced_pod_log("p", namespace) == "second run\n"


def test_log_container_choice(core: Any, devcluster: RunningDevCluster, namespace: str) -> None:
    _pod(core, namespace, "a", "b")
    for container in ("a", "b"):
        path = log_path(devcluster.state_dir, namespace, "p", container)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"from {container}\n")
    assert core.read_namespaced_pod_log("p", namespace, container="b") == "from b\n"
    with pytest.raises(ApiException) as unnamed:
        core.read_namespaced_pod_log("p", namespace)
    assert unnamed.value.status == 400
    assert "a container name must be specified for pod p, choose one of: [a b]" in (
        str(unnamed.value.body)
    )
    with pytest.raises(ApiException) as wrong:
        core.read_namespaced_pod_log("p", namespace, container="c")
    assert wrong.value.status == 400
    assert "container c is not valid for pod p" in str(wrong.value.body)


def test_log_before_the_container_starts(core: Any, namespace: str) -> None:
    _pod(core, namespace, "main")
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_pod_log("p", namespace)
    assert raised.value.status == 400
    assert "is waiting to start" in str(raised.value.body)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod_log("nope", namespace)
    assert missing.value.status == 404


def _follow(http: httpx.Client, namespace: str, then: Callable[[], None]) -> str:
    """The followed log of pod p; `then` runs (in a thread) once the stream has shown the
    file as it was, so that what it appends can only arrive through the follow."""
    with http.stream(
        "GET", f"/api/v1/namespaces/{namespace}/pods/p/log", params={"follow": "true"}
    ) as answer:
        assert answer.headers["content-type"].startswith("text/plain")
        chunks = answer.iter_bytes()
        received = [next(chunks)]
        changer = threading.Thread(target=then)
        changer.start()
        received.extend(chunks)
    changer.join()
    return b"".join(received).decode()


def test_follow_streams_appended_lines_until_the_pod_goes(
    core: Any,
    http: httpx.Client,
    devcluster: RunningDevCluster,
    namespace: str,
) -> None:
    _pod(core, namespace, "main")
    path = log_path(devcluster.state_dir, namespace, "p", "main")
    path.parent.mkdir(parents=True)
    path.write_text("first\n")

    def append_then_delete() -> None:
        with path.open("a") as handle:
            handle.write("second\n")
        core.delete_namespaced_pod("p", namespace)

    assert _follow(http, namespace, append_then_delete) == "first\nsecond\n"


def test_follow_ends_when_the_container_terminates(
    core: Any, http: httpx.Client, devcluster: RunningDevCluster, namespace: str
) -> None:
    _pod(core, namespace, "main")
    path = log_path(devcluster.state_dir, namespace, "p", "main")
    path.parent.mkdir(parents=True)
    path.write_text("working\n")

    def append_then_terminate() -> None:
        with path.open("a") as handle:
            handle.write("done\n")
        core.patch_namespaced_pod_status(
            "p",
            namespace,
            {
                "status": {
                    "containerStatuses": [
                        {
                            "name": "main",
                            "image": "i:1",
                            "imageID": "",
                            "ready": False,
                            "restartCount": 0,
                            "state": {"terminated": {"exitCode": 0}},
                        }
                    ]
                }
            },
        )

    assert _follow(http, namespace, append_then_terminate) == "working\ndone\n"
    assert core.read_namespaced_pod("p", namespace).metadata.name == "p"  # still there
