"""kubectl against the devcluster: get, apply -f, patch, logs, delete, get -w, auth can-i.

`make test` installs kubectl (Debian's kubernetes-client) when it is missing and apt is
usable; elsewhere these tests are skipped with the reason (a failure under CI). `apply`
validates against the devcluster's minimal /openapi/v2 (no schemas: the server
validates). kubectl's generators send protobuf bodies: those of the simple kinds are
decoded (`create namespace|configmap|secret|serviceaccount`), the others (`run`,
`create deployment`) are 415, so pods and workloads are created with `apply -f`."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections.abc import Callable

import pytest

from devcluster.apiserver.logs import log_path
from devcluster.testing import RunningDevCluster
from micro.testing.tools import KUBECTL_INSTALL_HINT, kubectl_path

pytestmark = pytest.mark.kubectl

Kubectl = Callable[..., str]

# How long the watch test waits for kubectl to print its next event.
WATCH_WAIT_S = 30

MANIFEST = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {{app: smoke}}
data:
  level: "{level}"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        env: [{{name: LEVEL, value: "{level}"}}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"""


@pytest.fixture(scope="session")
def kubectl_binary() -> str:
    binary = kubectl_path()
    if binary is None:
        pytest.skip(f"kubectl is not installed: {KUBECTL_INSTALL_HINT}")
    return binary


@pytest.fixture
def kubectl(kubectl_binary: str, devcluster: RunningDevCluster, namespace: str) -> Kubectl:
    def run(*args: str, stdin: str | None = None, check: bool = True) -> str:
        command = [
            kubectl_binary,
            "--kubeconfig",
            str(devcluster.kubeconfig),
            "--namespace",
            namespace,
            *args,
        ]
        done = subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=60, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed: {done.stderr}")
        return done.stdout + (done.stderr if not check else "")

    return run


def test_get_apply_patch_delete(kubectl: Kubectl, namespace: str) -> None:
    assert "kube-system" in kubectl("get", "namespaces")
    applied = kubectl("apply", "-f", "-", stdin=MANIFEST.format(level=1))
    assert "configmap/settings created" in applied
    assert "deployment.apps/web created" in applied
    assert "service/web created" in applied
    again = kubectl("apply", "-f", "-", stdin=MANIFEST.format(level=2))
    assert "configmap/settings configured" in again
    assert "service/web unchanged" in again
    settings = json.loads(kubectl("get", "configmap", "settings", "-o", "json"))
    assert settings["data"] == {"level": "2"}
    assert "kubectl.kubernetes.io/last-applied-configuration" in settings["metadata"]["annotations"]
    deployment = json.loads(kubectl("get", "deploy", "web", "-o", "json"))
    assert deployment["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "LEVEL", "value": "2"}
    ]
    assert "deployment.apps/web scaled" in kubectl("scale", "deployment", "web", "--replicas=3")
    assert json.loads(kubectl("get", "deploy", "web", "-o", "json"))["spec"]["replicas"] == 3
    table = kubectl("get", "svc", "web")
    assert "NodePort" in table
    assert "10.96." in table

    kubectl("patch", "configmap", "settings", "-p", '{"data":{"extra":"x"}}')
    kubectl("patch", "configmap", "settings", "--type=merge", "-p", '{"data":{"level":"3"}}')
    kubectl(
        "patch",
        "configmap",
        "settings",
        "--type=json",
        "-p",
        '[{"op":"remove","path":"/data/extra"}]',
    )
    assert json.loads(kubectl("get", "cm", "settings", "-o", "json"))["data"] == {"level": "3"}
    assert kubectl("get", "cm", "-l", "app=smoke", "-o", "name") == "configmap/settings\n"

    assert 'configmap "settings" deleted' in kubectl("delete", "configmap", "settings")
    missing = kubectl("get", "configmap", "settings", check=False)
    assert 'configmaps "settings" not found' in missing


def test_get_watch_prints_changes(
    kubectl_binary: str, kubectl: Kubectl, devcluster: RunningDevCluster, namespace: str
) -> None:
    kubectl(
        "apply",
        "-f",
        "-",
        stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched}\n",
    )
    watcher = subprocess.Popen(
        [
            kubectl_binary,
            "--kubeconfig",
            str(devcluster.kubeconfig),
            "--namespace",
            namespace,
            "get",
            "configmaps",
            "--watch",
            "--output-watch-events",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watcher.stdout is not None
    lines: queue.Queue[str] = queue.Queue()

    def read_lines() -> None:
        assert watcher.stdout is not None
        for line in watcher.stdout:
            lines.put(line)

    reader = threading.Thread(target=read_lines)
    reader.start()

    def next_row() -> list[str]:
        return lines.get(timeout=WATCH_WAIT_S).split()[:2]

    try:
        # Each change is made once the watch has shown the one before it.
        rows = [next_row(), next_row()]
        kubectl("label", "configmap", "watched", "stage=two")
        rows.append(next_row())
        kubectl("delete", "configmap", "watched")
        rows.append(next_row())
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
        reader.join(timeout=10)
        watcher.stdout.close()
        assert watcher.stderr is not None
        watcher.stderr.close()
    assert rows[0] == ["EVENT", "NAME"]
    assert rows[1:] == [["ADDED", "watched"], ["MODIFIED", "watched"], ["DELETED", "watched"]]


def test_logs_and_auth(kubectl: Kubectl, devcluster: RunningDevCluster, namespace: str) -> None:
    kubectl(
        "apply",
        "-f",
        "-",
        stdin=(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: shell}\n"
            "spec: {containers: [{name: shell, image: busybox:1.36}]}\n"
        ),
    )
    path = log_path(devcluster.state_dir, namespace, "shell", "shell")
    path.parent.mkdir(parents=True)
    path.write_text("hi\nthere\n")
    assert kubectl("logs", "shell") == "hi\nthere\n"
    assert kubectl("logs", "shell", "--tail=1") == "there\n"
    assert kubectl("auth", "can-i", "delete", "pods").strip() == "yes"
    kubectl(
        "apply",
        "-f",
        "-",
        stdin="apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: limited}\n",
    )
    denied = kubectl(
        "auth",
        "can-i",
        "delete",
        "pods",
        f"--as=system:serviceaccount:{namespace}:limited",
        check=False,
    )
    assert denied.strip().startswith("no")


def test_generators_that_send_protobuf(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "configmap", "generated", "--from-literal=a=1", "--from-literal=b=2")
    kubectl(
        "create",
        "secret",
        "generic",
        "login",
        "--from-literal=user=me",
        "--type=kubernetes.io/basic-auth",
    )
    kubectl("create", "serviceaccount", "generated")
    configmap = json.loads(kubectl("get", "configmap", "generated", "-o", "json"))
    assert configmap["data"] == {"a": "1", "b": "2"}
    assert "generateName" not in configmap["metadata"]
    secret = json.loads(kubectl("get", "secret", "login", "-o", "json"))
    assert (secret["type"], secret["data"]) == ("kubernetes.io/basic-auth", {"user": "bWU="})
    assert "serviceaccount/generated" in kubectl("get", "serviceaccounts", "-o", "name")
    other = f"{namespace}-x"
    kubectl("create", "namespace", other)
    try:
        assert other in kubectl("get", "namespaces", other, "-o", "name")
    finally:
        kubectl("delete", "namespace", other)
    refused = kubectl("create", "deployment", "web", "--image=nginx:1.27", check=False)
    assert "unknown format" in refused


def test_describe_a_pod_with_probes(kubectl: Kubectl, namespace: str) -> None:
    # kubectl describe dereferences grpc.service, which kube-apiserver defaults to "".
    kubectl(
        "apply",
        "-f",
        "-",
        stdin=(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: probed}\n"
            "spec: {containers: [{name: app, image: busybox:1.36,\n"
            "  livenessProbe: {grpc: {port: 9090}},\n"
            "  readinessProbe: {httpGet: {port: 8080}}}]}\n"
        ),
    )
    pod = json.loads(kubectl("get", "pod", "probed", "-o", "json"))
    container = pod["spec"]["containers"][0]
    assert container["livenessProbe"]["grpc"] == {"port": 9090, "service": ""}
    assert container["readinessProbe"]["httpGet"] == {"port": 8080, "path": "/", "scheme": "HTTP"}
    described = kubectl("describe", "pod", "probed")
    assert "grpc <pod>:9090" in described
    assert "http-get http://:8080/" in described
