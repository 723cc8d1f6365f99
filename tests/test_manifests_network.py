"""NetworkPolicy in .k8s: deny by default, then exactly the call graph, DNS and the API."""

from __future__ import annotations

from itertools import product
from typing import Any

import pytest

from devcluster.runner.selectors import matches

from .conftest import GRPC_CALLS, SHIPPED_SERVICES

SERVICES = (*SHIPPED_SERVICES, "postgres")
OUTSIDE = "outside"  # a client beyond the namespace: a browser, curl, a NodePort hop
PORTS = (8080, 9090, 5432)
EXPECTED = {
    (OUTSIDE, "admin-srv", 8080),
    (OUTSIDE, "admin-srv", 9090),
    (OUTSIDE, "data-srv", 8080),
    *((caller, callee, 9090) for caller, callee in GRPC_CALLS),
    ("user-srv", "postgres", 5432),
    ("token-srv", "postgres", 5432),
    ("device-srv", "postgres", 5432),
}


def peer_matches(peer: dict[str, Any], endpoint: str) -> bool:
    """Whether a from/to peer admits a service's pods (in this namespace) or the outside."""
    if endpoint == OUTSIDE:
        return "ipBlock" in peer or peer.get("namespaceSelector") == {}
    if "ipBlock" in peer:
        return False  # pod-to-pod traffic here is never meant to ride on an IP range
    if "namespaceSelector" in peer and peer["namespaceSelector"] != {}:
        return False  # another namespace
    return matches(peer.get("podSelector", {}), {"app": endpoint})


def port_matches(rule: dict[str, Any], port: int) -> bool:
    ports = rule.get("ports")
    return not ports or any(
        p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in ports
    )


def allowed(policies: list[dict[str, Any]], direction: str, pod: str, peer: str, port: int) -> bool:
    """Kubernetes semantics: isolated when any policy selects the pod for the direction,
    then allowed when any rule of those policies admits the peer and port."""
    field = {"Ingress": "ingress", "Egress": "egress"}[direction]
    peers_key = {"Ingress": "from", "Egress": "to"}[direction]
    applying = [
        p
        for p in policies
        if direction in p["spec"].get("policyTypes", ["Ingress"])
        and matches(p["spec"]["podSelector"], {"app": pod})
    ]
    if not applying:
        return True
    for policy in applying:
        for rule in policy["spec"].get(field) or []:
            peers = rule.get(peers_key)
            if port_matches(rule, port) and (
                not peers or any(peer_matches(x, peer) for x in peers)
            ):
                return True
    return False


def flows(policies: list[dict[str, Any]]) -> set[tuple[str, str, int]]:
    """Every (source, destination, port) the policies let through, over both directions."""
    found = set()
    for source, destination, port in product((OUTSIDE, *SERVICES), SERVICES, PORTS):
        if source == destination:
            continue
        egress = source == OUTSIDE or allowed(policies, "Egress", source, destination, port)
        if egress and allowed(policies, "Ingress", destination, source, port):
            found.add((source, destination, port))
    return found


@pytest.fixture
def policies(k8s_objects: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for k, o in k8s_objects.items() if k.startswith("NetworkPolicy/")]


def test_default_deny_in_both_directions(policies: list[dict[str, Any]]) -> None:
    deny = [p for p in policies if p["metadata"]["name"] == "default-deny-all"]
    assert len(deny) == 1
    assert deny[0]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_exactly_the_call_graph_flows(policies: list[dict[str, Any]]) -> None:
    assert flows(policies) == EXPECTED


def test_without_the_deny_all_policy_more_would_flow(policies: list[dict[str, Any]]) -> None:
    """The evaluation has teeth: with no policies at all, everything flows."""
    assert flows([]) > EXPECTED
    widened = [
        *policies,
        {"spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}},
    ]
    assert ("data-srv", "user-srv", 9090) not in flows(widened), "egress still holds it back"


def test_every_pod_reaches_dns_and_the_api_server_only_on_their_ports(
    policies: list[dict[str, Any]],
) -> None:
    dns = {
        (r["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
         r["to"][0]["podSelector"]["matchLabels"]["k8s-app"],
         tuple(sorted((p["protocol"], p["port"]) for p in r["ports"])))
        for p in policies
        if p["spec"]["podSelector"] == {}
        for r in p["spec"].get("egress") or []
        if "namespaceSelector" in r["to"][0]
    }  # fmt: skip
    assert dns == {("kube-system", "kube-dns", (("TCP", 53), ("UDP", 53)))}
    api = [
        r
        for p in policies
        if p["spec"]["podSelector"] == {}
        for r in p["spec"].get("egress") or []
        if "ipBlock" in r["to"][0]
    ]
    assert len(api) == 1
    assert sorted(p["port"] for p in api[0]["ports"]) == [443, 6443]
    for service in SERVICES:
        assert allowed(policies, "Egress", service, OUTSIDE, 443)
        assert not allowed(policies, "Egress", service, OUTSIDE, 8080)
