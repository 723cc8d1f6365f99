"""The whole system from .k8s on the devcluster, as `make run` runs it.

One system for the module: `python -m devcluster run` on its own loopback network with
the manifests of .k8s and the dev Secrets of `make secrets DEV=1` (the demo user, a JWT
key, and one shared SQLite file per database service), two replicas of every service.
Clients come in only through the NodePorts, as a user of `make run` would.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import grpc
import pytest

from api.admin_srv.v1 import admin_pb2, admin_pb2_grpc
from devcluster.apiserver.audit import DEFAULT_FILE, read_events
from devcluster.runner.testing import ready_pods, wait_for
from micro.testing.tools import KUBECTL_INSTALL_HINT, kubectl_path

from .audit_calls import Call, calls_by_service, calls_table, self_registered
from .cluster_load import OPERATIONS, Load, Request
from .cluster_system import (
    LOGIN,
    NAMESPACE,
    SERVICES,
    System,
    pod_warnings,
    replicas_ready,
    rolled_out,
)

# The backends each gateway discovers through the Pod registry (a watch of their pods).
DISCOVERS = {"admin-srv": ("user-srv", "token-srv", "device-srv"), "data-srv": ("device-srv",)}

# A bounded load: at most this many requests, at most this long. It is stopped as soon as
# requests ran on both sides of the disruption, so these bounds only cap a slow run.
LOAD_LIMIT = 3000
LOAD_TIME_S = 180.0
# Requests that must complete before the disruption and start and complete after it:
# one round of every operation.
AROUND_DISRUPTION = len(OPERATIONS)
TRAFFIC_WAIT_S = 30.0


def under_load(system: System, disrupt: Callable[[], None]) -> list[Request]:
    """One client's logins over HTTP and gRPC, /me and device lookups (admin-srv ->
    user-srv, token-srv, device-srv; data-srv -> device-srv) while `disrupt` runs;
    returns every request made."""
    load = Load(system, clients=1, duration_s=LOAD_TIME_S, limit=LOAD_LIMIT)
    began = time.monotonic()
    load.start()
    try:
        wait_for(
            "traffic before the disruption",
            lambda: load.completed_since(began) >= AROUND_DISRUPTION,
            TRAFFIC_WAIT_S,
            0.05,
        )
        disrupt()
        disrupted = time.monotonic()
        wait_for(
            "traffic after the disruption",
            lambda: load.completed_since(disrupted) >= AROUND_DISRUPTION,
            TRAFFIC_WAIT_S,
            0.05,
        )
    finally:
        requests = load.stop()
    return requests


def failed(requests: list[Request]) -> list[str]:
    return [f"{r.operation}: {r.error}" for r in requests if not r.ok]


# tests ---------------------------------------------------------------------------------


def test_login_over_http_answers_as_the_original(system: System) -> None:
    reply = system.http.post("/admin/v1/login", json=LOGIN)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["id"], body["userName"]) == ("1", "thangn")
    assert body["token"].count(".") == 2


def test_login_over_grpc(system: System) -> None:
    with grpc.insecure_channel(system.grpc_target) as channel:
        auth = admin_pb2_grpc.AuthenticationServiceStub(channel)
        reply = auth.Login(
            admin_pb2.LoginRequest(user_name="thangn", password="123456"), timeout=10
        )
    assert (reply.id, reply.user_name) == ("1", "thangn")
    assert reply.token.count(".") == 2


def test_device_lookup_through_data_srv_in_json_and_text(system: System) -> None:
    as_json = system.data.get("/data/device1", headers={"Accept": "application/json"})
    as_text = system.data.get("/data/device1", headers={"Accept": "text/plain"})
    assert as_json.status_code == 200
    assert as_json.json() == {"device": "device1", "active": True}
    assert as_text.status_code == 200
    assert as_text.text == "Device active:  true\nOh and, no data for you!\n"


def test_device_lookup_through_admin_srv_with_the_token(system: System) -> None:
    auth = {"Authorization": f"Bearer {system.token()}"}
    found = system.http.get("/admin/v1/devices/device1", headers=auth)
    refused = system.http.get("/admin/v1/devices/device1")
    assert found.status_code == 200
    assert found.json() == {"name": "device1", "active": True}
    assert refused.status_code == 401


def test_replicas_share_one_database(system: System) -> None:
    """A user created through one user-srv pod logs in whichever pod answers."""
    auth = {"Authorization": f"Bearer {system.token()}"}
    created = system.http.post(
        "/admin/v1/users", headers=auth, json={"userName": "alice", "password": "alice-pass"}
    )
    assert created.status_code == 200, created.text
    for _ in range(10):  # power of two choices over two pods: both answer within ten
        reply = system.http.post(
            "/admin/v1/login", json={"userName": "alice", "password": "alice-pass"}
        )
        assert reply.status_code == 200, reply.text


def test_each_pod_registered_with_its_own_address_and_id(system: System) -> None:
    for service in SERVICES:
        pods = ready_pods(system.node.core, NAMESPACE, f"app={service}")
        assert len(pods) == 2, service
        addresses = {p.status.pod_ip for p in pods}
        ids = {p.metadata.labels["gomicro-service-id"] for p in pods}
        assert len(addresses) == 2, addresses
        assert "127.0.0.1" not in addresses
        assert ids == {f"{p.metadata.name}.go-micro.{service}" for p in pods}


def test_deleted_backend_pods_are_replaced_without_a_failed_request(system: System) -> None:
    victims = {
        app: ready_pods(system.node.core, NAMESPACE, f"app={app}")[0].metadata.name
        for app in ("user-srv", "device-srv")
    }

    def delete_and_wait() -> None:
        for name in victims.values():
            system.node.core.delete_namespaced_pod(name, NAMESPACE)
        for app, name in victims.items():
            wait_for(f"{app} replaced", partial(replicas_ready, system, app, {name}), 60, 0.2)

    requests = under_load(system, delete_and_wait)
    assert len(requests) > 20
    assert failed(requests) == [], pod_warnings(system)


def test_rolling_update_completes_without_a_failed_request(system: System) -> None:
    apps = system.node.apps
    before = {p.metadata.name for p in ready_pods(system.node.core, NAMESPACE, "app=token-srv")}

    def roll() -> None:
        patch = {"spec": {"template": {"metadata": {"annotations": {"e2e/rollout": "1"}}}}}
        apps.patch_namespaced_deployment("token-srv", NAMESPACE, patch)

        wait_for("token-srv rolled out", partial(rolled_out, system, "token-srv", before), 90, 0.2)

    requests = under_load(system, roll)
    assert len(requests) > 20
    assert failed(requests) == [], pod_warnings(system)


@pytest.mark.kubectl
def test_kubectl_get_pods_and_logs(system: System) -> None:
    kubectl = kubectl_path()
    if kubectl is None:
        pytest.skip(f"kubectl is not installed: {KUBECTL_INSTALL_HINT}")
    environment = {
        "KUBECONFIG": str(system.node.state_dir / "kubeconfig"),
        "HOME": str(system.node.state_dir),  # kubectl's cache, never in the checkout
        "PATH": "/usr/bin",
    }

    def run(*args: str) -> str:
        result = subprocess.run(
            [kubectl, "-n", NAMESPACE, *args],
            capture_output=True,
            text=True,
            env=environment,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    listed = run("get", "pods", "-l", "app=user-srv", "-o", "name")
    names = [line.removeprefix("pod/") for line in listed.split()]
    assert len(names) == 2
    table = run("get", "pods")
    assert all(name in table for name in names)
    assert len(re.findall(r"\b1/1\s+Running\b", table)) == 2 * len(SERVICES)
    logs = run("logs", names[0])
    assert "go-micro.user-srv" in logs


def test_every_kubernetes_call_of_the_services_was_allowed(
    system: System, k8s_objects: dict[str, dict[str, Any]]
) -> None:
    """Last in the module, so it sees every call the services made under their own
    tokens through the tests above (starts, replaced pods, a rolling update), as the
    devcluster's audit log recorded them: none was refused by RBAC, and the calls that
    show the check is not vacuous happened."""
    log = system.node.state_dir / DEFAULT_FILE
    pods = {
        service: {
            p.metadata.name for p in ready_pods(system.node.core, NAMESPACE, f"app={service}")
        }
        for service in SERVICES
    }

    def registered() -> dict[str, list[Call]] | None:
        calls = calls_by_service(read_events(log), NAMESPACE)
        return calls if all(pods[s] <= self_registered(calls[s]) for s in SERVICES) else None

    # Every pod registers (patches itself) before it is ready: wait for the log's flush.
    calls = wait_for("every ready pod's registration in the audit log", registered, 10)
    print(f"\nKubernetes calls of the services (audit log {log}):\n{calls_table(calls)}")

    refused = [(service, c) for service in SERVICES for c in calls[service] if c.code == 403]
    assert refused == [], "a Role lacks a rule, or a service calls beyond its needs"
    for service in SERVICES:
        made = calls[service]
        assert any((c.verb, c.resource) == ("watch", "configmaps") for c in made), service
        rules = k8s_objects[f"Role/{service}"]["rules"]
        own_secrets = {
            n for r in rules if "secrets" in r["resources"] for n in r.get("resourceNames", [])
        }
        watched = {c.name for c in made if (c.verb, c.resource) == ("watch", "secrets")}
        assert watched == own_secrets, service  # each Secret it may read, watched by name
    for gateway, backends in DISCOVERS.items():
        made = calls[gateway]
        selectors = {c.label_selector for c in made if (c.verb, c.resource) == ("watch", "pods")}
        assert {f"gomicro-service-app=go-micro.{b}" for b in backends} <= selectors, gateway
