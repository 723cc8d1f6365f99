"""The server process: HTTPS with its own CA, the kubeconfig, restarts that keep state,
and a clean stop on SIGTERM."""

from __future__ import annotations

import os
import pathlib
import signal
import ssl
import subprocess
import sys
import time
from typing import Any

import httpx
import kubernetes.client
import kubernetes.config
import pytest
import yaml
from kubernetes.client import ApiException

from devcluster.runner.testing import alive
from devcluster.testing import RunningDevCluster, body, running_devcluster


def test_https_verifies_against_the_generated_ca(devcluster: RunningDevCluster) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{devcluster.url}/readyz")  # the system trust store does not know it
    context = ssl.create_default_context(cafile=str(devcluster.ca_file))
    assert httpx.get(f"{devcluster.url}/readyz", verify=context).status_code == 200
    localhost = devcluster.url.replace("127.0.0.1", "localhost")
    assert httpx.get(f"{localhost}/readyz", verify=context).status_code == 200


def test_the_kubeconfig_is_cluster_admin(devcluster: RunningDevCluster) -> None:
    config = yaml.safe_load(devcluster.kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == devcluster.url
    assert (devcluster.kubeconfig.stat().st_mode & 0o077) == 0
    client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        str(devcluster.kubeconfig)
    )
    with client:
        core: Any = kubernetes.client.CoreV1Api(client)
        assert "kube-system" in {n.metadata.name for n in core.list_namespace().items}
        review: Any = kubernetes.client.AuthorizationV1Api(
            client
        ).create_self_subject_access_review(
            body({"spec": {"resourceAttributes": {"verb": "*", "resource": "*", "group": "*"}}})
        )
        assert review.status.allowed


def test_a_restart_keeps_objects_and_continues_versions(tmp_path: pathlib.Path) -> None:
    with running_devcluster(tmp_path / "state") as cluster:
        with cluster.api_client() as client:
            core: Any = kubernetes.client.CoreV1Api(client)
            created = core.create_namespaced_config_map(
                "default", body({"metadata": {"name": "kept"}, "data": {"a": "1"}})
            )
            token = cluster.service_account_token("default", "default")
        url, admin = cluster.url, cluster.admin_token
        cluster.restart()
        assert (cluster.url, cluster.admin_token) == (url, admin)
        with cluster.api_client() as client:
            core = kubernetes.client.CoreV1Api(client)
            kept = core.read_namespaced_config_map("kept", "default")
            assert kept.metadata.uid == created.metadata.uid
            assert kept.data == {"a": "1"}
            after = core.create_namespaced_config_map(
                "default", body({"metadata": {"name": "after"}})
            )
            assert int(after.metadata.resource_version) > int(created.metadata.resource_version)
            names = [n.metadata.name for n in core.list_namespace().items]
            assert names.count("default") == 1
        with cluster.api_client(token) as client:  # tokens survive a restart too
            with pytest.raises(ApiException) as raised:
                kubernetes.client.CoreV1Api(client).list_namespaced_secret("default")
            assert raised.value.status == 403


def test_sigterm_stops_cleanly_and_removes_the_kubeconfig(tmp_path: pathlib.Path) -> None:
    state = tmp_path / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "devcluster", "serve", "--port", "0", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if b"serving on" in line:
                break
        assert (state / "kubeconfig").exists()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not (state / "kubeconfig").exists()
    assert (state / "store.json").exists()


def test_stop_with_parent_ends_the_server_when_its_parent_dies(tmp_path: pathlib.Path) -> None:
    """A runner killed with SIGKILL must not leave its API server behind."""
    state = tmp_path / "state"
    serve = [sys.executable, "-m", "devcluster", "serve", "--port", "0", "--stop-with-parent"]
    parent = subprocess.Popen(  # a shell stands in for the runner: it starts the server, waits
        ["/bin/sh", "-c", '"$@" --state-dir "$STATE" & echo "$!"; wait', "sh", *serve],
        stdout=subprocess.PIPE,
        env={**os.environ, "STATE": str(state)},
    )
    server_pid = None
    try:
        assert parent.stdout is not None
        server_pid = int(parent.stdout.readline())
        deadline = time.monotonic() + 30
        while not (state / "kubeconfig").exists():  # written once the server answers
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 15
        while alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(server_pid), "the server outlived its parent"
        assert (state / "store.json").exists()  # it stopped cleanly: the state was saved
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if server_pid is not None and alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)
