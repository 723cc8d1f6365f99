"""A pod whose container image is changed is restarted with the new image, as the real
kubelet does when a container's definition changes."""

from __future__ import annotations

from typing import Any

import httpx

from devcluster.runner.testing import RunningNode, node_namespace, wait_for


def _pod(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "app",
                    "image": "devcluster-test/app:1",
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {
                        "httpGet": {"path": "/ready", "port": 8080},
                        "periodSeconds": 1,
                    },
                }
            ],
        },
    }


def _answer(pod_ip: str) -> dict[str, Any] | None:
    try:
        answer: dict[str, Any] = httpx.get(f"http://{pod_ip}:8080/", timeout=2).json()
    except httpx.HTTPError:
        return None
    return answer


def _ready(node: RunningNode, namespace: str) -> Any:
    pod = node.core.read_namespaced_pod("web", namespace)
    statuses = pod.status.container_statuses or []
    return pod if statuses and statuses[0].ready else None


def test_an_image_change_restarts_the_container_with_the_new_image(node: RunningNode) -> None:
    namespace = node_namespace(node, "image")
    node.core.create_namespaced_pod(namespace, _pod(namespace))
    before = wait_for("the pod to be ready", lambda: _ready(node, namespace), timeout_s=60)
    pod_ip = before.status.pod_ip
    assert wait_for("the app to answer", lambda: _answer(pod_ip))["version"] == ""
    [old] = before.status.container_statuses

    node.core.patch_namespaced_pod(
        "web",
        namespace,
        {"spec": {"containers": [{"name": "app", "image": "devcluster-test/app-v2:1"}]}},
    )

    answer = wait_for(
        "the new image's process to answer",
        lambda: a if (a := _answer(pod_ip)) and a["version"] == "v2" else None,
        timeout_s=60,
    )
    after = wait_for(
        "the status to show the restart",
        lambda: (
            p
            if (p := _ready(node, namespace))
            and p.status.container_statuses[0].restart_count == old.restart_count + 1
            else None
        ),
        timeout_s=30,
    )
    [new] = after.status.container_statuses
    assert answer["ip"] == pod_ip  # the same pod, not a new one
    assert new.image == "devcluster-test/app-v2:1"
    assert new.container_id != old.container_id
    # Stopped with SIGTERM and its grace period: the app exits 0 when it drains.
    assert new.last_state.terminated.exit_code == 0
    assert "definition changed" in (new.last_state.terminated.message or "")
    events = node.core.list_namespaced_event(namespace).items
    killing = [e for e in events if e.reason == "Killing"]
    assert [e.message for e in killing] == ["Container app definition changed, will be restarted"]
    assert killing[0].involved_object.field_path == "spec.containers{app}"
    # Patched again to the first image: restarted again, the count goes on.
    node.core.patch_namespaced_pod(
        "web",
        namespace,
        {"spec": {"containers": [{"name": "app", "image": "devcluster-test/app:1"}]}},
    )
    wait_for(
        "the first image's process to answer again",
        lambda: a if (a := _answer(pod_ip)) and a["version"] == "" else None,
        timeout_s=60,
    )
    final = wait_for(
        "the second restart",
        lambda: (
            p
            if (p := _ready(node, namespace))
            and p.status.container_statuses[0].restart_count == old.restart_count + 2
            else None
        ),
        timeout_s=30,
    )
    assert final.status.container_statuses[0].image == "devcluster-test/app:1"
