"""From a Pod's JSON to a ServiceInstance: annotations, routability, endpoints."""

from __future__ import annotations

import json
import re
from typing import Any

from micro.kube import JsonObject
from micro.registry.base import ServiceInstance
from micro.registry.endpoints import format_endpoint
from micro.registry.labels import RegistryKeys, instance_id

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
# Container port names that say their protocol: grpc, grpc-port, http-metrics ...
_PORT_NAME = re.compile(r"^(grpc|http)(-.*)?$")


class MalformedPod(ValueError):
    """A Pod whose registry annotations cannot be read; the message says which and why."""


def is_routable(pod: JsonObject) -> bool:
    """Running, Ready condition True, and no deletionTimestamp."""
    metadata = pod.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or not status.get("podIP"):
        return False
    return any(
        condition.get("type") == "Ready" and condition.get("status") == "True"
        for condition in status.get("conditions") or ()
    )


def parse_metadata(raw: str | None, key: str) -> dict[str, str]:
    """The metadata annotation: a JSON object of strings (trailing newlines of a YAML
    block scalar are fine). Missing means empty."""
    if raw is None or not raw.strip():
        return {}
    value = _json(raw, key)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise MalformedPod(f"annotation {key}: must be a JSON object of strings")
    return dict(value)


def parse_protocols(raw: str, key: str) -> dict[int, str]:
    """The protocols annotation: a JSON object port -> scheme, e.g. {"9090": "grpc"}."""
    value = _json(raw, key)
    if not isinstance(value, dict):
        raise MalformedPod(f"annotation {key}: must be a JSON object of port -> scheme")
    protocols: dict[int, str] = {}
    for port_text, scheme in value.items():
        if not (port_text.isdigit() and 0 < int(port_text) < 65536):
            raise MalformedPod(f"annotation {key}: {port_text!r} is not a port number")
        if not isinstance(scheme, str) or not _SCHEME.match(scheme):
            raise MalformedPod(f"annotation {key}: port {port_text} has scheme {scheme!r}")
        protocols[int(port_text)] = scheme
    return protocols


def protocols_from_ports(pod: JsonObject) -> dict[int, str]:
    """Fallback: container ports named grpc-* / http-* (or just grpc / http)."""
    protocols: dict[int, str] = {}
    for container in (pod.get("spec") or {}).get("containers") or ():
        for port in container.get("ports") or ():
            match = _PORT_NAME.match(str(port.get("name") or ""))
            number = port.get("containerPort")
            if match and isinstance(number, int):
                protocols.setdefault(number, match[1])
    return protocols


def pod_instance(pod: JsonObject, keys: RegistryKeys) -> ServiceInstance | None:
    """The instance a Pod stands for, or None when it is not routable or has no endpoint.

    Raises MalformedPod when its annotations cannot be read.
    """
    metadata = pod.get("metadata") or {}
    labels: dict[str, str] = metadata.get("labels") or {}
    annotations: dict[str, str] = metadata.get("annotations") or {}
    name = labels.get(keys.app, "")
    if not name or not is_routable(pod):
        return None
    service_metadata = parse_metadata(annotations.get(keys.metadata), keys.metadata)
    raw_protocols = annotations.get(keys.protocols)
    if raw_protocols is not None and raw_protocols.strip():
        protocols = parse_protocols(raw_protocols, keys.protocols)
    else:
        protocols = protocols_from_ports(pod)
    if not protocols:
        return None
    pod_ip = str(pod["status"]["podIP"])
    return ServiceInstance(
        id=labels.get(keys.id) or instance_id(str(metadata.get("name", "")), name),
        name=name,
        version=labels.get(keys.version, ""),
        metadata=service_metadata,
        endpoints=tuple(
            format_endpoint(protocols[port], pod_ip, port) for port in sorted(protocols)
        ),
    )


def _json(raw: str, key: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as error:
        raise MalformedPod(f"annotation {key}: not JSON ({error})") from error
    except RecursionError:
        # Any pod of the namespace may carry it: skipped like other unreadable ones.
        raise MalformedPod(f"annotation {key}: not JSON (nested too deeply)") from None
