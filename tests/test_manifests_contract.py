"""The pods in .k8s: the registry contract, Services, probes, hardening, shutdown, budgets."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster.runner.selectors import matches_map
from micro.config import load_config
from micro.config.model import service_config_model
from micro.registry.labels import check_label_value
from micro.registry.names import registry_name

from .conftest import SHIPPED_SERVICES

NAMESPACE = "go-micro"
DOWNWARD_API = {
    "POD_NAME": "metadata.name",
    "POD_NAMESPACE": "metadata.namespace",
    "POD_IP": "status.podIP",
}
# Where the outside world reaches the system (the original guide's NodePorts for admin-srv).
EXTERNAL_PORTS = {"admin-srv": {30000: 8080, 30001: 9090}, "data-srv": {30080: 8080}}
ADMIN_PORT = "admin"  # the containerPort name of every service's admin port


def pod_template(objects: dict[str, dict[str, Any]], service: str) -> dict[str, Any]:
    template: dict[str, Any] = objects[f"Deployment/{service}"]["spec"]["template"]
    return template


def container_of(objects: dict[str, dict[str, Any]], service: str) -> dict[str, Any]:
    (container,) = pod_template(objects, service)["spec"]["containers"]
    assert container["name"] == service
    return dict(container)


def test_registry_labels(k8s_objects: dict[str, dict[str, Any]], shipped_service: str) -> None:
    labels = pod_template(k8s_objects, shipped_service)["metadata"]["labels"]
    assert labels["gomicro-service-app"] == f"go-micro.{shipped_service}"
    for key in ("gomicro-service-id", "gomicro-service-app", "gomicro-service-version"):
        check_label_value(key, labels[key])  # LabelValueError: empty, too long or bad chars


def test_registry_annotations_match_the_container_ports(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    annotations = pod_template(k8s_objects, shipped_service)["metadata"]["annotations"]
    metadata = json.loads(annotations["gomicro-service-metadata"])
    assert isinstance(metadata, dict)
    assert all(isinstance(v, str) for v in metadata.values())
    protocols = json.loads(annotations["gomicro-service-protocols"])
    assert isinstance(protocols, dict)
    assert set(protocols.values()) <= {"grpc", "http"}
    # The admin port is for probes and Prometheus only, never for discovery.
    ports = {
        str(p["containerPort"]): p["name"]
        for p in container_of(k8s_objects, shipped_service)["ports"]
        if p["name"] != ADMIN_PORT
    }
    assert set(protocols) == set(ports), "every declared protocol is a container port and back"
    for port, scheme in protocols.items():
        assert ports[port] == f"{scheme}-port", "port names say the scheme (grpc-*, http-*)"
    expected = {"admin-srv": {"8080": "http", "9090": "grpc"}, "data-srv": {"8080": "http"}}
    assert protocols == expected.get(shipped_service, {"9090": "grpc"})


def test_service_selects_the_pods_and_their_ports(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    deployment = k8s_objects[f"Deployment/{shipped_service}"]
    service = k8s_objects[f"Service/{shipped_service}"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = service["spec"]["selector"]
    assert selector == deployment["spec"]["selector"]["matchLabels"] == {"app": shipped_service}
    assert matches_map(selector, labels)
    # No other Deployment's pods fall under this Service.
    others = [
        key
        for key, obj in k8s_objects.items()
        if key.startswith("Deployment/")
        and key != f"Deployment/{shipped_service}"
        and matches_map(selector, obj["spec"]["template"]["metadata"]["labels"])
    ]
    assert others == []
    container_ports = {
        p["name"]: p["containerPort"] for p in container_of(k8s_objects, shipped_service)["ports"]
    }
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in container_ports
        assert port["port"] == container_ports[port["targetPort"]]
    exposed = {p["nodePort"]: p["port"] for p in service["spec"]["ports"] if "nodePort" in p}
    assert exposed == EXTERNAL_PORTS.get(shipped_service, {})
    if exposed:
        assert service["spec"]["type"] in ("NodePort", "LoadBalancer")
    else:
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_downward_api_environment(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    env = {e["name"]: e for e in container_of(k8s_objects, shipped_service)["env"]}
    for name, path in DOWNWARD_API.items():
        assert env[name]["valueFrom"] == {"fieldRef": {"fieldPath": path}}
    # The image carries MICRO_CONFIG_DIR; a Deployment value would hide it from the devcluster.
    assert "MICRO_CONFIG_DIR" not in env


def test_probes(k8s_objects: dict[str, dict[str, Any]], shipped_service: str) -> None:
    """Every probe asks the admin port; liveness only whether the process answers, so a
    dependency's outage restarts nothing."""
    container = container_of(k8s_objects, shipped_service)
    assert ADMIN_PORT in {p["name"] for p in container["ports"]}
    probes = {k: container[k] for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": ADMIN_PORT}
    assert probes["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": ADMIN_PORT}
    assert probes["startupProbe"]["httpGet"]["port"] == ADMIN_PORT
    liveness = probes["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 20
    assert (
        probes["startupProbe"]["periodSeconds"] * probes["startupProbe"]["failureThreshold"] >= 30
    )


def test_resources_requests_within_limits(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    resources = container_of(k8s_objects, shipped_service)["resources"]
    for kind in ("cpu", "memory"):
        request, limit = resources["requests"][kind], resources["limits"][kind]
        assert quantity(request) <= quantity(limit), f"{kind}: {request} > {limit}"


def quantity(value: str | int) -> float:
    match = re.fullmatch(r"([0-9.]+)(m|Ki|Mi|Gi)?", str(value))
    assert match, value
    scale = {None: 1.0, "m": 0.001, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30}[match.group(2)]
    return float(match.group(1)) * scale


def test_hardening(k8s_objects: dict[str, dict[str, Any]], shipped_service: str) -> None:
    spec = pod_template(k8s_objects, shipped_service)["spec"]
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == 10001
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container_of(k8s_objects, shipped_service)["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 10001
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "hostNetwork" not in spec
    assert "hostPID" not in spec


def test_writable_paths_are_empty_dirs(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    """With a read-only root, /tmp and the SQLite folder (every writable mount) must be
    emptyDir mounts; relative data paths resolve against the container's workingDir, the
    image's WORKDIR /app."""
    spec = pod_template(k8s_objects, shipped_service)["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    container = container_of(k8s_objects, shipped_service)
    assert container["workingDir"] == "/app"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert all("emptyDir" in volumes[name] for name in mounts.values())
    assert "/tmp" in mounts
    config = effective_config(k8s_objects, shipped_service)
    database = getattr(config, "database", None)
    if database is None:
        return
    url = (
        database.url.get_secret_value()
        if hasattr(database.url, "get_secret_value")
        else str(database.url)
    )
    # sqlite:///relative/file or sqlite:////absolute/file; else a file in data_dir
    written = url.split(":///", 1)[1] if url.startswith("sqlite") else database.data_dir
    path = written if written.startswith("/") else f"{container['workingDir']}/{written}"
    assert any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts), (
        f"{shipped_service} writes {path}, which is on the read-only root"
    )


def effective_config(objects: dict[str, dict[str, Any]], service: str) -> Any:
    """The config a pod loads: the image's bootstrap under the ConfigMap (no API needed)."""
    model = service_config_model(service)
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "00-remote.yaml").write_text(
            (root / service / "configs/k8s/remote.yaml").read_text()
        )
        (folder / "10-configmap.yaml").write_text(
            objects[f"ConfigMap/{service}"]["data"]["config.yaml"]
        )
        handle = load_config(
            model,
            service=registry_name(service),
            config_dir=folder,
            env={"MICRO__REMOTE__TYPE": "none"},
        )
        return handle.current


def test_configmap_is_valid_config_for_the_service(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    configmap = k8s_objects[f"ConfigMap/{shipped_service}"]
    assert configmap["metadata"]["labels"] == {"app": shipped_service}
    assert set(configmap["data"]) == {"config.yaml"}
    config = effective_config(k8s_objects, shipped_service)
    assert config.registry.type == "k8s"
    servers = (config.server.http, config.server.grpc, config.server.admin)
    addresses = [s.addr for s in servers if s is not None]
    ports = sorted(int(a.rpartition(":")[2]) for a in addresses)
    declared = sorted(
        p["containerPort"] for p in container_of(k8s_objects, shipped_service)["ports"]
    )
    assert ports == declared, "the servers listen on the ports the pod declares"
    assert all(a.startswith("0.0.0.0:") for a in addresses)


def test_no_secret_values_in_configmaps(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    text = k8s_objects[f"ConfigMap/{shipped_service}"]["data"]["config.yaml"]
    document = yaml.safe_load(text)
    forbidden = re.compile(r"(password|secret|private_key|bootstrap_users|keys|token)$", re.I)

    def walk(node: Any, path: str) -> list[str]:
        found = []
        if isinstance(node, dict):
            for key, value in node.items():
                where = f"{path}.{key}" if path else str(key)
                if forbidden.search(str(key)):
                    found.append(where)
                found += walk(value, where)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                found += walk(value, f"{path}[{index}]")
        elif isinstance(node, str) and re.search(r"-----BEGIN|://[^/@\s]+:[^/@\s]+@", node):
            found.append(path)
        return found

    assert walk(document, "") == []
    assert "thangn" not in text
    assert "123456" not in text


def test_shutdown_fits_in_the_grace_period(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    """preStop, then the app's drain_delay and grace_period, all before SIGKILL."""
    spec = pod_template(k8s_objects, shipped_service)["spec"]
    command = container_of(k8s_objects, shipped_service)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    shutdown = effective_config(k8s_objects, shipped_service).shutdown
    needed = (
        float(command[1])
        + shutdown.drain_delay.total_seconds()
        + shutdown.grace_period.total_seconds()
    )
    grace = spec["terminationGracePeriodSeconds"]
    assert needed + 2 <= grace <= needed + 15, f"{needed}s of shutdown in {grace}s"


def test_two_replicas_rolled_without_loss_and_a_disruption_budget(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    deployment = k8s_objects[f"Deployment/{shipped_service}"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    budget = k8s_objects[f"PodDisruptionBudget/{shipped_service}"]
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    assert 1 <= budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]


@pytest.mark.parametrize("label", ["app", "gomicro-service-app"])
def test_selectors_do_not_overlap_between_services(
    k8s_objects: dict[str, dict[str, Any]], label: str
) -> None:
    values = [
        obj["spec"]["template"]["metadata"]["labels"][label]
        for key, obj in k8s_objects.items()
        if key.startswith("Deployment/")
    ]
    assert len(values) == len(set(values)) == len(SHIPPED_SERVICES)
