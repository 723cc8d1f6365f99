"""`python -m devcluster run` says which Deployments are not available and why.

One runner serves the module; each test has a namespace and a Deployment of its own
and reads the runner's output, waiting (bounded) for the line it expects.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from devcluster.runner.availability import explain_pod
from devcluster.runner.testing import RunningNode, deployment, node_namespace, wait_for

CLEAN_START = "from a clean state: Ctrl-C, `rm -rf "


@pytest.fixture
def namespace(node: RunningNode) -> str:
    return node_namespace(node, "a")


def reports(node: RunningNode, key: str) -> list[list[str]]:
    """Each report about one Deployment: its line and the log lines under it."""
    lines = node.text().splitlines()
    found = []
    for index, line in enumerate(lines):
        if f"devcluster: deployment {key} not available" in line:
            tail = []
            for following in lines[index + 1 :]:
                if not following.startswith("devcluster:   | "):
                    break
                tail.append(following.removeprefix("devcluster:   | "))
            found.append([line, *tail])
    return found


def first_report(node: RunningNode, key: str, containing: str) -> list[str]:
    def matching() -> list[str] | None:
        return next((r for r in reports(node, key) if containing in r[0]), None)

    found: list[str] = wait_for(f"a report on {key} with {containing!r}", matching, timeout_s=40)
    return found


def restart_count(node: RunningNode, namespace: str) -> int:
    pods = node.core.list_namespaced_pod(namespace).items
    return max(
        (s.restart_count for p in pods for s in p.status.container_statuses or []), default=0
    )


def test_a_crash_loop_is_reported_once_with_its_last_log_lines(
    node: RunningNode, namespace: str
) -> None:
    crash: dict[str, Any] = {
        "command": [
            "python",
            "-c",
            "import sys; print('loading settings'); print('settings: bad value'); sys.exit(3)",
        ],
        "readinessProbe": None,
    }
    node.apply(json.dumps(deployment("crash", namespace, replicas=1, extra_container=crash)))
    key = f"{namespace}/crash"
    report = first_report(node, key, "crashed")
    assert "(0 of 1 available)" in report[0]
    assert ", container app: crashed, last exit code 3 (Error); restarted" in report[0]
    assert report[1:] == ["loading settings", "settings: bad value"]
    assert CLEAN_START in node.text()
    # The container keeps crashing (waiting, running, waiting, ...): no news, no report.
    seen = restart_count(node, namespace)
    wait_for("two more restarts", lambda: restart_count(node, namespace) >= seen + 2)
    assert len(reports(node, key)) == 1
    # A different reason is news.
    node.apps.patch_namespaced_deployment(
        "crash",
        namespace,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "app", "command": ["python", "-c", "raise SystemExit(4)"]}
                        ]
                    }
                }
            }
        },
    )
    first_report(node, key, "crashed, last exit code 4 (Error)")


def test_a_failing_readiness_probe_is_named_with_its_last_message(
    node: RunningNode, namespace: str
) -> None:
    node.apply(json.dumps(deployment("unready", namespace, replicas=1, env={"READY": "fail"})))
    # Connection refused first, while the server starts; then its answer.
    report = first_report(node, f"{namespace}/unready", "statuscode: 503")
    assert report[0].endswith(
        ", container app: running, readinessProbe http-get http://:http/ready failing:"
        " Readiness probe failed: HTTP probe failed with statuscode: 503"
    )
    events = node.core.list_namespaced_event(namespace).items
    assert {(e.reason, e.involved_object.field_path) for e in events} == {
        ("Unhealthy", "spec.containers{app}")
    }


def test_an_unknown_image_is_reported_with_the_kubelets_message(
    node: RunningNode, namespace: str
) -> None:
    missing = {"image": "devcluster-test/missing:1"}
    node.apply(json.dumps(deployment("noimage", namespace, replicas=1, extra_container=missing)))
    report = first_report(node, f"{namespace}/noimage", "CreateContainerConfigError")
    assert (
        ", container app: CreateContainerConfigError: image 'devcluster-test/missing:1'"
        " has no local command in"
    ) in report[0]


def test_an_unschedulable_pod_is_reported(node: RunningNode, namespace: str) -> None:
    elsewhere = {"schedulerName": "gpu-scheduler"}
    node.apply(json.dumps(deployment("pending", namespace, replicas=1, pod_spec=elsewhere)))
    report = first_report(node, f"{namespace}/pending", "not scheduled")
    assert report[0].endswith(
        ": not scheduled: waiting for scheduler 'gpu-scheduler', which this node lacks"
    )


def pod_with(containers: list[dict[str, Any]], statuses: list[dict[str, Any]], **spec: Any) -> Any:
    return {
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1"},
        "spec": {"nodeName": "devcluster", "containers": containers, **spec},
        "status": {"containerStatuses": statuses},
    }


GRPC_STARTUP = {"grpc": {"port": 9090, "service": "shop.v1.Shop"}, "periodSeconds": 1}


def test_a_pod_still_starting_is_not_a_problem() -> None:
    started = {"running": {"startedAt": "2030-01-01T00:00:00Z"}}
    pod = pod_with(
        [{"name": "app", "startupProbe": GRPC_STARTUP}],
        [{"name": "app", "ready": False, "started": False, "state": started}],
    )
    before = {
        "metadata": {"name": "web-1.0"},
        "involvedObject": {"uid": "u-1", "fieldPath": "spec.containers{app}"},
        "reason": "Unhealthy",
        "message": "Startup probe failed: a runner ago",
        "lastTimestamp": "2029-12-31T23:00:00Z",
    }
    refused = {
        "metadata": {"name": "web-1.1"},
        "involvedObject": {"uid": "u-1", "fieldPath": "spec.containers{app}"},
        "reason": "Unhealthy",
        "message": "Startup probe failed: connection refused",
        "lastTimestamp": "2030-01-01T00:00:00Z",
    }
    finding = explain_pod(pod, [refused, before])
    assert not finding.problem
    assert finding.where() + finding.reason == (
        "pod web-1, container app: running, startupProbe grpc :9090 service shop.v1.Shop"
        " not passed yet (Startup probe failed: connection refused)"
    )
    # An Event from before the container's current start is no news about it.
    assert explain_pod(pod, [before]).reason.endswith("not passed yet")


def test_the_most_telling_container_is_the_one_reported() -> None:
    crashed = {"terminated": {"exitCode": 1, "reason": "Error"}}
    pod = pod_with(
        [{"name": "app"}, {"name": "sidecar"}],
        [
            {"name": "app", "ready": False, "state": {"waiting": {"reason": "ContainerCreating"}}},
            {
                "name": "sidecar",
                "ready": False,
                "restartCount": 2,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": crashed,
            },
        ],
    )
    finding = explain_pod(pod, [])
    assert finding.problem
    assert finding.show_log
    assert finding.container == "sidecar"
    assert (finding.reason, finding.detail) == (
        "crashed, last exit code 1 (Error)",
        "restarted 2 times",
    )


def test_a_failing_init_container_is_named_as_one() -> None:
    pod = pod_with(
        [{"name": "app"}],
        [{"name": "app", "ready": False, "state": {"waiting": {"reason": "PodInitializing"}}}],
        initContainers=[{"name": "migrate"}],
    )
    pod["status"]["initContainerStatuses"] = [
        {"name": "migrate", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}
    ]
    finding = explain_pod(pod, [])
    assert finding.where() + finding.reason == (
        "pod web-1, init container migrate: exited, exit code 2 (Error)"
    )
    assert finding.problem
