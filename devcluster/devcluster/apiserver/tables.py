"""Server-side printing: the meta.k8s.io/v1 Table that `kubectl get` asks for."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from devcluster.apiserver.resources import ResourceType
from devcluster.apiserver.store import Obj

_NAME = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "priority": 0,
    "description": "Name must be unique within a namespace.",
}
_AGE = {
    "name": "Age",
    "type": "string",
    "format": "",
    "priority": 0,
    "description": "CreationTimestamp is the time the object was created.",
}


def _column(name: str, priority: int = 0) -> dict[str, Any]:
    return {"name": name, "type": "string", "format": "", "priority": priority, "description": name}


def human_age(timestamp: str | None) -> str:
    """kubectl's duration.HumanDuration, to the precision `kubectl get` shows."""
    if not timestamp:
        return "<unknown>"
    created = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.UTC
    )
    seconds = int((datetime.datetime.now(datetime.UTC) - created).total_seconds())
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def _pod_cells(obj: Obj) -> list[Any]:
    spec, state = obj.get("spec") or {}, obj.get("status") or {}
    statuses = state.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    phase = state.get("phase", "Pending")
    if obj["metadata"].get("deletionTimestamp"):
        phase = "Terminating"
    return [f"{ready}/{len(spec.get('containers') or [])}", phase, restarts]


def _service_cells(obj: Obj) -> list[Any]:
    spec = obj.get("spec") or {}
    ports = ",".join(
        f"{p.get('port')}:{p['nodePort']}/{p.get('protocol', 'TCP')}"
        if "nodePort" in p
        else f"{p.get('port')}/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    )
    return [
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP", "<none>"),
        "<none>",
        ports or "<none>",
    ]


def _namespace_cells(obj: Obj) -> list[Any]:
    return [(obj.get("status") or {}).get("phase", "Active")]


def _deployment_cells(obj: Obj) -> list[Any]:
    spec, state = obj.get("spec") or {}, obj.get("status") or {}
    return [
        f"{state.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        state.get("updatedReplicas", 0),
        state.get("availableReplicas", 0),
    ]


def _configmap_cells(obj: Obj) -> list[Any]:
    return [len(obj.get("data") or {}) + len(obj.get("binaryData") or {})]


def _pod_wide_cells(obj: Obj) -> list[Any]:
    spec, state = obj.get("spec") or {}, obj.get("status") or {}
    return [state.get("podIP") or "<none>", spec.get("nodeName") or "<none>"]


# Columns after Age that only `-o wide` shows (priority 1), as kubectl's printers.
_WIDE = {"pods": (["IP", "Node"], _pod_wide_cells)}

_EXTRA = {
    "pods": (["Ready", "Status", "Restarts"], _pod_cells),
    "services": (["Type", "Cluster-IP", "External-IP", "Port(s)"], _service_cells),
    "namespaces": (["Status"], _namespace_cells),
    "deployments": (["Ready", "Up-to-date", "Available"], _deployment_cells),
    "configmaps": (["Data"], _configmap_cells),
    "secrets": (["Data"], _configmap_cells),
}


def table(
    resource: ResourceType,
    objects: Iterable[Obj],
    resource_version: str,
    include_object: str = "PartialObjectMetadata",
    continue_token: str = "",
) -> dict[str, Any]:
    names, cells = _EXTRA.get(resource.plural, ([], None))
    wide_names, wide_cells = _WIDE.get(resource.plural, ([], None))
    columns = [_NAME, *(_column(n) for n in names), _AGE, *(_column(n, 1) for n in wide_names)]
    rows = []
    for obj in objects:
        row_cells = [
            obj["metadata"]["name"],
            *(cells(obj) if cells else []),
            human_age(obj["metadata"].get("creationTimestamp")),
            *(wide_cells(obj) if wide_cells else []),
        ]
        row: dict[str, Any] = {"cells": row_cells}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(row)
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    }


def wants_table(accept: str) -> bool:
    return any("as=Table" in part for part in accept.split(","))
