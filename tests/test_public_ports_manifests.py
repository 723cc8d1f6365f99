"""The public NodePorts in .k8s keep the client's address: externalTrafficPolicy Local
(the node proxy does not rewrite the source), and no service trusts a proxy header."""

from __future__ import annotations

from typing import Any

from .test_manifests_contract import effective_config


def node_port_services(objects: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        key: service
        for key, service in objects.items()
        if key.startswith("Service/")
        and service["spec"].get("type") in ("NodePort", "LoadBalancer")
    }


def test_every_public_service_keeps_the_client_address(
    k8s_objects: dict[str, dict[str, Any]],
) -> None:
    public = node_port_services(k8s_objects)
    assert set(public) == {"Service/admin-srv", "Service/data-srv"}
    for key, service in public.items():
        assert service["spec"].get("externalTrafficPolicy") == "Local", key


def test_no_shipped_service_trusts_a_proxy_header(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    """Clients reach the pods directly through the NodePort: a header would be theirs."""
    server = effective_config(k8s_objects, shipped_service).server
    for section in (server.http, server.grpc):
        assert section is None or section.trusted_proxies == (), shipped_service
