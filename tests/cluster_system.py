"""The whole system from .k8s on the devcluster, as `make run` runs it, for tests.

`python -m devcluster run` on its own loopback network with the manifests of .k8s and
the dev Secrets of `make secrets DEV=1` (the demo user, a JWT key, and one shared SQLite
file per database service), two replicas of every service. Clients come in only through
the NodePorts, as a user of `make run` would. Used by tests/test_e2e_cluster.py and the
soak and failure tests of tests/reliability/.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devcluster.runner.kubelet.tokens import REFRESH_CAP_ENV
from devcluster.runner.testing import RunningNode, ready_pods, running_node, wait_for

REPO_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "go-micro"
# Every service folder with a manifest: a new service joins the whole-system tests.
SERVICES = tuple(
    sorted(
        p.name for p in REPO_ROOT.glob("*-srv") if (REPO_ROOT / ".k8s" / f"{p.name}.yaml").is_file()
    )
)
LOGIN = {"userName": "thangn", "password": "123456"}
START_TIMEOUT_S = 120.0
# The kubelet rewrites every projected token this often (the devcluster's test-only cap;
# 480s otherwise), so the whole system runs through token rotations under test.
TOKEN_REFRESH_S = 5.0


@dataclass
class System:
    node: RunningNode
    http: httpx.Client  # admin-srv, NodePort 30000
    data: httpx.Client  # data-srv, NodePort 30080

    @property
    def grpc_target(self) -> str:
        return f"{self.node.node_address}:30001"

    @property
    def http_url(self) -> str:
        return f"http://{self.node.node_address}:30000"

    @property
    def data_url(self) -> str:
        return f"http://{self.node.node_address}:30080"

    def token(self) -> str:
        reply = self.http.post("/admin/v1/login", json=LOGIN)
        reply.raise_for_status()
        token: str = reply.json()["token"]
        return token


@contextlib.contextmanager
def running_system(tmp: Path) -> Iterator[System]:
    """Start the system in `tmp` and yield it once every Deployment is available."""
    secrets = tmp / "secrets"
    subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts/make_secrets.py"),
            "--dev",
            "--out",
            str(secrets),
        ],
        check=True,
        capture_output=True,
    )
    with contextlib.ExitStack() as stack:
        with pytest.MonkeyPatch.context() as env:  # the runner inherits it at start only
            env.setenv(REFRESH_CAP_ENV, str(TOKEN_REFRESH_S))
            node = stack.enter_context(
                running_node(tmp, manifest_paths=(REPO_ROOT / ".k8s", secrets))
            )
        wait_for(
            "every Deployment to be available",
            lambda: (
                f"all {len(SERVICES)} deployments available" in node.text()
                or node.process.poll() is not None
            ),
            timeout_s=START_TIMEOUT_S,
            every_s=0.5,
        )
        assert node.process.poll() is None, node.text()[-3000:]
        base = f"http://{node.node_address}"
        with (
            httpx.Client(base_url=f"{base}:30000", timeout=10) as http,
            httpx.Client(base_url=f"{base}:30080", timeout=10) as data,
        ):
            yield System(node, http, data)


def replicas_ready(system: System, app: str, gone: set[str], count: int = 2) -> bool:
    """`count` ready pods of `app`, none of them named in `gone`."""
    pods = ready_pods(system.node.core, NAMESPACE, f"app={app}")
    return len(pods) == count and not gone & {p.metadata.name for p in pods}


def rolled_out(system: System, name: str, replaced: set[str], count: int = 2) -> bool:
    """The Deployment's new template is rolled out: every replica updated and available,
    and none of the `replaced` pods is among the ready ones."""
    deployment = system.node.apps.read_namespaced_deployment(name, NAMESPACE)
    status = deployment.status
    return bool(
        status.observed_generation == deployment.metadata.generation
        and status.updated_replicas == count
        and status.available_replicas == count
        and (status.replicas or 0) == count
        and replicas_ready(system, name, replaced, count)
    )


def pod_warnings(system: System, limit: int = 40) -> str:
    """The last `limit` WARNING and ERROR lines of the pods' logs, for the message of a
    failed whole-system test (the logs go with the test's temporary folder)."""
    lines = [
        f"{path.parent.name}: {line[:400]}"
        for path in sorted((system.node.state_dir / "logs").rglob("*.log"))
        for line in path.read_text(errors="replace").splitlines()
        if line.startswith(("WARNING", "ERROR"))
    ]
    return "pods' warnings:\n" + "\n".join(lines[-limit:])
