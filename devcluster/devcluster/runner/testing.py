"""Running `python -m devcluster run` for tests, on loopback addresses of its own.

Each run gets a random 127.a.b.0/24: pods take addresses from it and NodePorts listen
on 127.a.b.1, so concurrent test runs never collide on a port. Whole-system tests use
`running_node` with the project's manifests; the runner's own tests with small ones.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import kubernetes.client
import kubernetes.config
import kubernetes.utils
import yaml

from devcluster.runner.kubelet.images import DEFAULT_IMAGES_FILE
from devcluster.testing import terminate

STOP_TIMEOUT_S = 40.0


@dataclass
class RunningNode:
    process: subprocess.Popen[bytes]
    state_dir: pathlib.Path
    node_address: str
    output: pathlib.Path
    api: kubernetes.client.ApiClient

    @property
    def core(self) -> Any:  # the client's models are Optional everywhere
        return kubernetes.client.CoreV1Api(self.api)

    @property
    def apps(self) -> Any:  # the client's models are Optional everywhere
        return kubernetes.client.AppsV1Api(self.api)

    @property
    def discovery(self) -> Any:  # the client's models are Optional everywhere
        return kubernetes.client.DiscoveryV1Api(self.api)

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def apply(self, manifest: str) -> None:
        """Create every object of a YAML stream (the test's own, fresh objects)."""
        for document in yaml.safe_load_all(manifest):
            if document:
                create: Any = kubernetes.utils.create_from_dict  # untyped in the client
                create(self.api, document)

    def stop(self) -> int:
        return terminate(self.process, STOP_TIMEOUT_S)


def wait_for(
    what: str, check: Callable[[], Any], timeout_s: float = 30.0, every_s: float = 0.1
) -> Any:
    """Poll until check() is truthy; fail naming what never happened."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@contextlib.contextmanager
def running_node(
    tmp_path: pathlib.Path,
    manifests: str = "",
    *,
    manifest_paths: tuple[pathlib.Path, ...] = (),
    images: pathlib.Path = DEFAULT_IMAGES_FILE,
    cwd: pathlib.Path | None = None,
    extra_args: tuple[str, ...] = (),
) -> Iterator[RunningNode]:
    """`python -m devcluster run` on a random loopback network, with the manifests given
    as text and/or paths; yields once they are applied; SIGTERM (then SIGKILL) at exit."""
    net = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}"  # noqa: S311
    state_dir = tmp_path / "state"
    manifest_file = tmp_path / "manifests.yaml"
    manifest_file.write_text(
        manifests or "apiVersion: v1\nkind: Namespace\nmetadata: {name: empty}\n"
    )
    sources = [
        arg for path in (manifest_file, *manifest_paths) for arg in ("--manifests", str(path))
    ]
    output = tmp_path / "run.log"
    command = [
        sys.executable, "-m", "devcluster", "run",
        *sources,
        "--state-dir", str(state_dir),
        "--api-port", "0",
        "--node-address", f"{net}.1",
        "--pod-network", f"{net}.0/24",
        "--images", str(images),
        "--restart-backoff", "0.5",
        *extra_args,
    ]  # fmt: skip
    with output.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, stdout=sink, stderr=subprocess.STDOUT, cwd=cwd, env={**os.environ}
        )
    node: RunningNode | None = None
    try:
        wait_for(
            "the runner to apply its manifests",
            lambda: (
                process.poll() is not None or "devcluster: export KUBECONFIG" in output.read_text()
            ),
            timeout_s=60,
        )
        if process.poll() is not None:
            raise AssertionError(f"devcluster run exited: {output.read_text()[-3000:]}")
        load: Any = kubernetes.config.new_client_from_config  # untyped in the client
        api: kubernetes.client.ApiClient = load(config_file=str(state_dir / "kubeconfig"))
        node = RunningNode(process, state_dir, f"{net}.1", output, api)
        yield node
    finally:
        if node is not None:
            closing: Any = node.api
            closing.close()
        terminate(process, STOP_TIMEOUT_S)


def pod_pids(pods: list[Any]) -> list[int]:
    """The process ids the kubelet reports as containerIDs (devcluster://<pid>)."""
    pids = []
    for pod in pods:
        for status in pod.status.container_statuses or []:
            if status.container_id and status.container_id.startswith("devcluster://"):
                pids.append(int(status.container_id.removeprefix("devcluster://")))
    return pids


def alive(pid: int) -> bool:
    """True for a live process (a zombie awaiting its reaper counts as gone)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children(pid: int) -> list[int]:
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def ready_pods(core: Any, namespace: str, selector: str) -> list[Any]:
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    return [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None
        and p.status.phase == "Running"
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]


def deployment(
    name: str,
    namespace: str,
    *,
    replicas: int = 2,
    env: dict[str, str] | None = None,
    extra_container: dict[str, Any] | None = None,
    strategy: dict[str, Any] | None = None,
    pod_spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Deployment of devcluster/tests' small HTTP app (image devcluster-test/app),
    ready on /ready."""
    container: dict[str, Any] = {
        "name": "app",
        "image": "devcluster-test/app:1",
        "ports": [{"name": "http", "containerPort": 8080}],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            *({"name": k, "value": v} for k, v in (env or {}).items()),
        ],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1},
        **(extra_container or {}),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy
            or {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"team": "runner"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [container],
                    **(pod_spec or {}),
                },
            },
        },
    }


def node_namespace(node: RunningNode, prefix: str) -> str:
    """A new namespace on the runner's cluster, for one test."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    node.core.create_namespace(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    return name
