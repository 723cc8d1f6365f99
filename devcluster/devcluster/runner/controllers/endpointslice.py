"""The EndpointSlice controller: one slice per Service and port mapping, following pods.

Endpoints carry the three conditions of discovery.k8s.io/v1: ready (serving and not
terminating), serving (the Ready condition, even while terminating) and terminating.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from devcluster.runner import podutil
from devcluster.runner.informer import Informer, key_of
from devcluster.runner.kube import ENDPOINTSLICE, MERGE_PATCH, Kube, Obj
from devcluster.runner.selectors import matches_map
from devcluster.runner.workqueue import WorkQueue

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"


def resolve_target_port(pod: Obj, service_port: Obj) -> int | None:
    """The container port a Service port reaches on this pod (a named targetPort is
    looked up in the pod's container ports; a missing one defaults to port)."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in pod.get("spec", {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and port.get("protocol", "TCP") == service_port.get(
                "protocol", "TCP"
            ):
                return int(port["containerPort"])
    return None


def _slice_ports(service: Obj, pod: Obj | None) -> list[Obj]:
    ports = []
    for service_port in service.get("spec", {}).get("ports") or []:
        number = resolve_target_port(pod, service_port) if pod is not None else None
        if pod is None:
            target = service_port.get("targetPort", service_port.get("port"))
            number = target if isinstance(target, int) else None
        if number is None:
            continue
        entry: dict[str, Any] = {
            "name": service_port.get("name", ""),
            "port": number,
            "protocol": service_port.get("protocol", "TCP"),
        }
        if service_port.get("appProtocol"):
            entry["appProtocol"] = service_port["appProtocol"]
        ports.append(entry)
    return ports


def _endpoint(pod: Obj, publish_not_ready: bool) -> Obj:
    ready = podutil.is_ready(pod)
    terminating = podutil.is_terminating(pod)
    meta = pod["metadata"]
    return {
        "addresses": [pod["status"]["podIP"]],
        "conditions": {
            "ready": publish_not_ready or (ready and not terminating),
            "serving": publish_not_ready or ready,
            "terminating": terminating,
        },
        "targetRef": {
            "kind": "Pod",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
        },
        **({"nodeName": pod["spec"]["nodeName"]} if pod["spec"].get("nodeName") else {}),
    }


def _project_ports(ports: list[Obj]) -> list[tuple[Any, ...]]:
    """The fields this controller writes, so that server defaults never look like a change."""
    return [
        (p.get("name", ""), p.get("port"), p.get("protocol", "TCP"), p.get("appProtocol"))
        for p in ports
    ]


def _project_endpoints(endpoints: list[Obj]) -> list[tuple[Any, ...]]:
    projected = []
    for e in endpoints:
        conditions = e.get("conditions") or {}
        ref = e.get("targetRef") or {}
        projected.append(
            (
                tuple(e.get("addresses") or []),
                bool(conditions.get("ready")),
                bool(conditions.get("serving")),
                bool(conditions.get("terminating")),
                ref.get("name"),
                ref.get("uid"),
                e.get("nodeName"),
            )
        )
    return projected


class EndpointSliceController:
    def __init__(self, kube: Kube, services: Informer, pods: Informer, slices: Informer) -> None:
        self.kube = kube
        self.services = services
        self.pods = pods
        self.slices = slices
        self.queue = WorkQueue("endpointslice", self.reconcile)
        services.add_handler(lambda _t, s, _p: self.queue.add(key_of(s)))
        pods.add_handler(self._on_pod)
        slices.add_handler(self._on_slice)

    def _on_pod(self, _type: str, pod: Obj, previous: Obj | None) -> None:
        namespace = pod["metadata"].get("namespace")
        for service in self.services.objects(namespace):
            selector = service.get("spec", {}).get("selector")
            if matches_map(selector, pod["metadata"].get("labels")) or (
                previous is not None and matches_map(selector, previous["metadata"].get("labels"))
            ):
                self.queue.add(key_of(service))

    def _on_slice(self, _type: str, endpoint_slice: Obj, _previous: Obj | None) -> None:
        meta = endpoint_slice["metadata"]
        name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if name:
            self.queue.add(f"{meta['namespace']}/{name}")

    def _owned_slices(self, namespace: str, name: str) -> list[Obj]:
        return [
            s
            for s in self.slices.objects(namespace)
            if (s["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == name
            and (s["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY
        ]

    async def reconcile(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        service = self.services.get(key)
        existing = self._owned_slices(namespace, name)
        if service is None or not service.get("spec", {}).get("selector"):
            # The garbage collector removes slices of deleted Services; a Service without
            # a selector has its slices managed by someone else.
            return
        publish = bool(service["spec"].get("publishNotReadyAddresses"))
        groups: dict[str, tuple[list[Obj], list[Obj]]] = {}
        for pod in self.pods.objects(namespace):
            if not matches_map(service["spec"]["selector"], pod["metadata"].get("labels")):
                continue
            if not pod.get("status", {}).get("podIP"):
                continue
            if pod["status"].get("phase") in ("Succeeded", "Failed"):
                continue
            ports = _slice_ports(service, pod)
            group = groups.setdefault(json.dumps(ports, sort_keys=True), (ports, []))
            group[1].append(_endpoint(pod, publish))
        if not groups:
            ports = _slice_ports(service, None)
            groups[json.dumps(ports, sort_keys=True)] = (ports, [])
        unused = list(existing)
        for signature, (ports, endpoints) in groups.items():
            endpoints.sort(key=lambda e: e["targetRef"]["name"])
            current = next(
                (
                    s
                    for s in unused
                    if json.dumps(s.get("ports") or [], sort_keys=True) == signature
                ),
                None,
            )
            if current is None and unused:
                current = unused[0]
            if current is not None:
                unused.remove(current)
                await self._update(service, current, ports, endpoints)
            else:
                await self._create(service, ports, endpoints)
        for stale in unused:
            await self.kube.delete(ENDPOINTSLICE, stale["metadata"]["name"], namespace)

    def _labels(self, service: Obj) -> dict[str, str]:
        labels = dict(service["metadata"].get("labels") or {})
        labels[SERVICE_NAME_LABEL] = service["metadata"]["name"]
        labels[MANAGED_BY_LABEL] = MANAGED_BY
        return labels

    async def _create(self, service: Obj, ports: list[Obj], endpoints: list[Obj]) -> None:
        meta = service["metadata"]
        body = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "generateName": f"{meta['name']}-",
                "namespace": meta["namespace"],
                "labels": self._labels(service),
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "addressType": "IPv4",
            "ports": ports,
            "endpoints": endpoints,
        }
        created = await self.kube.create(ENDPOINTSLICE, body, meta["namespace"])
        await self.slices.wait_for(created)

    async def _update(
        self, service: Obj, current: Obj, ports: list[Obj], endpoints: list[Obj]
    ) -> None:
        labels = self._labels(service)
        if (
            _project_ports(current.get("ports") or []) == _project_ports(ports)
            and _project_endpoints(current.get("endpoints") or []) == _project_endpoints(endpoints)
            and all(
                (current["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items()
            )
        ):
            return
        written = await self.kube.patch(
            ENDPOINTSLICE,
            current["metadata"]["name"],
            {"metadata": {"labels": labels}, "ports": ports, "endpoints": endpoints},
            current["metadata"]["namespace"],
            content_type=MERGE_PATCH,
        )
        await self.slices.wait_for(written)
