"""Nothing operational on the public NodePorts, asked from outside the running system.

admin-srv (HTTP 30000, gRPC 30001) and data-srv (HTTP 30080) answer only their APIs, the
liveness answer and the terse public /readyz; /metrics, the detailed /readyz and config
error text answer only on each pod's admin port, which no Service exposes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from api.admin_srv.v1 import admin_pb2
from devcluster.runner.testing import ready_pods, wait_for

from .cluster_system import NAMESPACE, System
from .test_manifests_contract import ADMIN_PORT, effective_config

PUBLIC_HTTP = {"admin-srv": 30000, "data-srv": 30080}
TERSE_READY = {"status": "ready"}
# What the admin port alone answers.
OPERATIONAL_PATHS = ("/metrics", "/metrics/", "/admin/metrics", "/readyz/detail")
# A value the config model refuses: the pods keep their config and report the error.
BAD_TIMEOUT = "soon-ish"


def admin_urls(system: System, service: str) -> list[str]:
    """http://<pod ip>:<admin port> of every ready pod of the service."""
    urls = []
    for pod in ready_pods(system.node.core, NAMESPACE, f"app={service}"):
        (container,) = pod.spec.containers
        (port,) = [p.container_port for p in container.ports if p.name == ADMIN_PORT]
        urls.append(f"http://{pod.status.pod_ip}:{port}")
    assert urls, f"no ready pod of {service}"
    return urls


@pytest.fixture
def public(system: System) -> Iterator[dict[str, httpx.Client]]:
    base = f"http://{system.node.node_address}"
    clients = {s: httpx.Client(base_url=f"{base}:{p}", timeout=10) for s, p in PUBLIC_HTTP.items()}
    yield clients
    for client in clients.values():
        client.close()


@pytest.mark.parametrize("service", sorted(PUBLIC_HTTP))
def test_public_http_port_answers_nothing_operational(
    system: System,
    public: dict[str, httpx.Client],
    k8s_objects: dict[str, dict[str, Any]],
    service: str,
) -> None:
    client = public[service]
    for path in OPERATIONAL_PATHS:
        answer = client.get(path)
        assert answer.status_code == 404, (path, answer.text)
        assert "# TYPE" not in answer.text, path
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, TERSE_READY)
    alive = client.get("/healthz")
    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
    http_config = effective_config(k8s_objects, service).server.http
    docs = client.get("/docs")
    assert docs.status_code == (200 if http_config.docs else 404)


@pytest.mark.parametrize("service", sorted(PUBLIC_HTTP))
def test_the_admin_port_answers_what_the_public_port_does_not(system: System, service: str) -> None:
    for url in admin_urls(system, service):
        metrics = httpx.get(f"{url}/metrics", timeout=10)
        assert metrics.status_code == 200
        assert "# TYPE" in metrics.text
        detail = httpx.get(f"{url}/readyz", timeout=10).json()
        assert detail["status"] == "ready"
        assert "phase" in detail


def test_public_grpc_port_serves_only_the_api_and_terse_health(system: System) -> None:
    """Reflection lists the public API, health and reflection; nothing else is served."""
    with grpc.insecure_channel(system.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        answer = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert answer == health_pb2.HealthCheckResponse(
            status=health_pb2.HealthCheckResponse.SERVING
        )
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        (reply,) = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
        listed = {s.name for s in reply.list_services_response.service}
        api = {s.full_name for s in admin_pb2.DESCRIPTOR.services_by_name.values()}
        assert listed == api | {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
        metrics = channel.unary_unary(
            "/micro.Admin/Metrics", request_serializer=bytes, response_deserializer=bytes
        )
        with pytest.raises(grpc.RpcError) as refused:
            metrics(b"", timeout=10)
        assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED


def config_errors(system: System, service: str) -> list[str]:
    return [
        str(httpx.get(f"{url}/readyz", timeout=10).json().get("configError", ""))
        for url in admin_urls(system, service)
    ]


def reporting(errors: list[str]) -> list[str] | None:
    return errors if all(BAD_TIMEOUT in error for error in errors) else None


def test_a_config_error_shows_only_on_the_admin_port(
    system: System, public: dict[str, httpx.Client]
) -> None:
    """A bad ConfigMap update: the pods keep serving on their last good config; the error
    text is on the admin port, and the public /readyz stays terse."""
    service = "data-srv"
    core = system.node.core
    original = core.read_namespaced_config_map(service, NAMESPACE).data["config.yaml"]
    config = yaml.safe_load(original)
    config["server"]["http"]["timeout"] = BAD_TIMEOUT
    bad = {"data": {"config.yaml": yaml.safe_dump(config)}}
    core.patch_namespaced_config_map(service, NAMESPACE, bad)
    try:
        errors = wait_for(
            "every data-srv pod to report the config error",
            lambda: reporting(config_errors(system, service)),
            timeout_s=60,
        )
        assert all("server.http.timeout" in error for error in errors)
        for path in ("/readyz", "/healthz", "/metrics", "/data/v1/devices/none"):
            answer = public[service].get(path)
            assert BAD_TIMEOUT not in answer.text, path
            assert "server.http.timeout" not in answer.text, path
        ready = public[service].get("/readyz")
        assert (ready.status_code, ready.json()) == (200, TERSE_READY)
    finally:
        core.patch_namespaced_config_map(service, NAMESPACE, {"data": {"config.yaml": original}})
        wait_for(
            "the config error to clear",
            lambda: not any(config_errors(system, service)),
            timeout_s=60,
        )
