"""The admin port in .k8s: declared by every container, scraped by Prometheus, reached by
the monitoring namespace only, and exposed by no Service."""

from __future__ import annotations

from typing import Any

from devcluster.runner.selectors import matches

from .test_manifests_contract import ADMIN_PORT, container_of, effective_config, pod_template

MONITORING = "monitoring"  # the namespace the scrape policy admits


def admin_port_of(objects: dict[str, dict[str, Any]], service: str) -> int:
    (port,) = [p for p in container_of(objects, service)["ports"] if p["name"] == ADMIN_PORT]
    assert port["protocol"] == "TCP"
    return int(port["containerPort"])


def test_the_container_declares_the_port_the_admin_server_binds(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    admin = effective_config(k8s_objects, shipped_service).server.admin
    assert admin is not None, "the admin server is on"
    host, _, port = admin.addr.rpartition(":")
    assert host == "0.0.0.0"
    assert int(port) == admin_port_of(k8s_objects, shipped_service)


def test_prometheus_scrapes_the_admin_port(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    annotations = pod_template(k8s_objects, shipped_service)["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(admin_port_of(k8s_objects, shipped_service))
    assert annotations["prometheus.io/path"] == "/metrics"


def test_no_service_port_leads_to_the_admin_port(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    number = admin_port_of(k8s_objects, shipped_service)
    for key, service in k8s_objects.items():
        if not key.startswith("Service/"):
            continue
        for port in service["spec"]["ports"]:
            assert port.get("targetPort", port["port"]) not in (ADMIN_PORT, number), key
            assert port["port"] != number or "nodePort" not in port, key


def ingress_rules_to(policies: list[dict[str, Any]], labels: dict[str, str]) -> list[Any]:
    return [
        rule
        for policy in policies
        if "Ingress" in policy["spec"].get("policyTypes", ["Ingress"])
        and matches(policy["spec"]["podSelector"], labels)
        for rule in policy["spec"].get("ingress") or []
    ]


def test_only_the_monitoring_namespace_reaches_the_admin_port(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    """Kubelet probes come from the node, which NetworkPolicy lets through anyway."""
    policies = [o for k, o in k8s_objects.items() if k.startswith("NetworkPolicy/")]
    labels = pod_template(k8s_objects, shipped_service)["metadata"]["labels"]
    number = admin_port_of(k8s_objects, shipped_service)
    admitting = [
        rule
        for rule in ingress_rules_to(policies, labels)
        if not rule.get("ports") or any(p.get("port") == number for p in rule["ports"])
    ]
    assert admitting, "some rule admits the scraper"
    for rule in admitting:
        assert [p["port"] for p in rule["ports"]] == [number]
        assert rule["from"] == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": MONITORING}}}
        ]
