"""Discovery from the EndpointSlices of a Kubernetes Service: needs only read access to
endpointslices, no pod patching."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from micro.kube import ENDPOINT_SLICES, InformerEvent, JsonObject
from micro.registry.base import ServiceInstance
from micro.registry.endpoints import format_endpoint
from micro.registry.labels import instance_id
from micro.registry.names import short_name
from micro.registry.watched import WatchedDiscovery, WatchedService

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
_SCHEME_IN_NAME = re.compile(r"(?:^|-)(grpc|http)(?:-|$)")


def port_scheme(port: JsonObject) -> str | None:
    """grpc or http from the port's appProtocol, else from its name (grpc, grpc-port,
    user-srv-grpc, http ...); None for a port of another protocol."""
    app_protocol = str(port.get("appProtocol") or "")
    if app_protocol in ("grpc", "http"):
        return app_protocol
    match = _SCHEME_IN_NAME.search(str(port.get("name") or ""))
    return match[1] if match else None


def _condition(conditions: dict[str, Any], name: str, unknown: bool) -> bool:
    value = conditions.get(name)
    return unknown if value is None else bool(value)


def slice_instances(service_name: str, slices: Sequence[JsonObject]) -> list[ServiceInstance]:
    """The instances of a Service from all its slices, merged.

    An endpoint is routable when ready (a missing condition means ready, as the API
    says) and not terminating. When none is, serving terminating endpoints are used, as
    kube-proxy does, so a rollout's last pods still answer while they drain. An address
    listed by two slices (while an endpoint moves between them) counts once.
    """
    ready: dict[str, ServiceInstance] = {}
    draining: dict[str, ServiceInstance] = {}
    for endpoint_slice in sorted(slices, key=lambda s: str(s["metadata"]["name"])):
        ports = [
            (scheme, int(port["port"]))
            for port in endpoint_slice.get("ports") or ()
            if (scheme := port_scheme(port)) and isinstance(port.get("port"), int)
        ]
        if not ports:
            continue
        for endpoint in endpoint_slice.get("endpoints") or ():
            addresses = endpoint.get("addresses") or ()
            if not addresses:
                continue
            address = str(addresses[0])  # the API: consumers use the first address
            conditions = endpoint.get("conditions") or {}
            is_ready = _condition(conditions, "ready", True)
            serving = _condition(conditions, "serving", is_ready)
            terminating = _condition(conditions, "terminating", False)
            target = endpoint.get("targetRef") or {}
            instance = ServiceInstance(
                id=instance_id(str(target.get("name") or address), service_name),
                name=service_name,
                version="",
                metadata={k: str(endpoint[k]) for k in ("nodeName", "zone") if endpoint.get(k)},
                endpoints=tuple(format_endpoint(s, address, p) for s, p in sorted(set(ports))),
            )
            if is_ready and not terminating:
                ready.setdefault(address, instance)
            elif serving and terminating:
                draining.setdefault(address, instance)
    return list(ready.values()) if ready else list(draining.values())


class EndpointSliceDiscovery(WatchedDiscovery):
    """Routable endpoints of the Service named after each asked-for service."""

    resource = ENDPOINT_SLICES

    def _label_selector(self, service_name: str) -> str:
        return f"{SERVICE_NAME_LABEL}={short_name(service_name)}"

    def _routable(
        self, watched: WatchedService, events: Sequence[InformerEvent]
    ) -> list[ServiceInstance]:
        return slice_instances(watched.name, list(watched.informer.snapshot().values()))
