"""The ReplicaSet controller: keep spec.replicas pods of the template alive.

Pods belong to a ReplicaSet through a controller ownerReference. Surplus pods are
deleted in the order the real controller prefers: unscheduled before scheduled, pending
before running, not ready before ready, then the most recently started first.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from devcluster.runner import podutil
from devcluster.runner.informer import Informer, key_of
from devcluster.runner.kube import MERGE_PATCH, POD, REPLICASET, Kube, Obj
from devcluster.runner.selectors import matches
from devcluster.runner.workqueue import WorkQueue

log = logging.getLogger(__name__)


def _deletion_rank(pod: Obj) -> tuple[int, int, int, str]:
    """Lower ranks are deleted first."""
    status = pod.get("status", {})
    scheduled = 1 if pod.get("spec", {}).get("nodeName") else 0
    phase = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase", "Pending"), 0)
    ready = 1 if podutil.is_ready(pod) else 0
    # Newer pods first: invert the ordering of the creation time string.
    created = pod["metadata"].get("creationTimestamp") or ""
    return (scheduled, phase, ready, "".join(chr(0x10FFFF - ord(c)) for c in created))


class ReplicaSetController:
    def __init__(self, kube: Kube, replicasets: Informer, pods: Informer) -> None:
        self.kube = kube
        self.replicasets = replicasets
        self.pods = pods
        self.queue = WorkQueue("replicaset", self.reconcile)
        replicasets.add_handler(lambda _t, rs, _p: self.queue.add(key_of(rs)))
        pods.add_handler(self._on_pod)

    def _on_pod(self, _type: str, pod: Obj, previous: Obj | None) -> None:
        for candidate in (pod, previous):
            if candidate is None:
                continue
            owner = podutil.owner_uid(candidate)
            if owner is None:
                continue
            for rs in self.replicasets.objects(candidate["metadata"].get("namespace")):
                if rs["metadata"]["uid"] == owner:
                    self.queue.add(key_of(rs))
                    # A pod that just turned ready becomes available after minReadySeconds.
                    delay = rs.get("spec", {}).get("minReadySeconds", 0)
                    if delay:
                        self.queue.add_after(key_of(rs), float(delay) + 0.1)

    def owned_pods(self, rs: Obj) -> list[Obj]:
        uid = rs["metadata"]["uid"]
        selector = rs.get("spec", {}).get("selector")
        return [
            pod
            for pod in self.pods.objects(rs["metadata"]["namespace"])
            if podutil.owner_uid(pod) == uid and matches(selector, pod["metadata"].get("labels"))
        ]

    async def reconcile(self, key: str) -> None:
        rs = self.replicasets.get(key)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        pods = self.owned_pods(rs)
        active = [p for p in pods if podutil.is_active(p)]
        wanted = int(rs.get("spec", {}).get("replicas", 1))
        diff = len(active) - wanted
        if diff < 0:
            await asyncio.gather(*(self._create_pod(rs) for _ in range(-diff)))
        elif diff > 0:
            victims = sorted(active, key=_deletion_rank)[:diff]
            await asyncio.gather(*(self._delete_pod(p) for p in victims))
        await self._write_status(rs, self.owned_pods(rs))

    async def _create_pod(self, rs: Obj) -> None:
        template: dict[str, Any] = copy.deepcopy(rs["spec"].get("template") or {})
        meta = template.setdefault("metadata", {})
        meta.pop("name", None)
        meta["generateName"] = f"{rs['metadata']['name']}-"
        meta["namespace"] = rs["metadata"]["namespace"]
        meta["ownerReferences"] = [podutil.owner_reference(rs)]
        pod = {"apiVersion": "v1", "kind": "Pod", **template}
        created = await self.kube.create(POD, pod, rs["metadata"]["namespace"])
        log.info("replicaset %s: created pod %s", key_of(rs), created["metadata"]["name"])
        await self.pods.wait_for(created)

    async def _delete_pod(self, pod: Obj) -> None:
        meta = pod["metadata"]
        if not await self.kube.delete(POD, meta["name"], meta["namespace"], uid=meta.get("uid")):
            return
        log.info("replicaset: deleted pod %s/%s", meta["namespace"], meta["name"])
        # Count again only once the cache shows the pod terminating or gone.
        deadline = asyncio.get_running_loop().time() + 5
        while asyncio.get_running_loop().time() < deadline:
            current = self.pods.get(key_of(pod))
            if current is None or podutil.is_terminating(current):
                return
            await asyncio.sleep(0.05)

    async def _write_status(self, rs: Obj, pods: list[Obj]) -> None:
        min_ready = int(rs.get("spec", {}).get("minReadySeconds", 0))
        active = [p for p in pods if podutil.is_active(p)]
        labels = rs["spec"].get("template", {}).get("metadata", {}).get("labels") or {}
        status: dict[str, Any] = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(
                1
                for p in active
                if all(p["metadata"].get("labels", {}).get(k) == v for k, v in labels.items())
            ),
            "readyReplicas": sum(1 for p in active if podutil.is_ready(p)),
            "availableReplicas": sum(1 for p in active if podutil.is_available(p, min_ready)),
            "terminatingReplicas": sum(1 for p in pods if podutil.is_terminating(p)),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        current = rs.get("status") or {}
        if all(current.get(k, 0) == v for k, v in status.items()):
            return
        written = await self.kube.patch(
            REPLICASET,
            rs["metadata"]["name"],
            {"status": status},
            rs["metadata"]["namespace"],
            status=True,
            content_type=MERGE_PATCH,
        )
        await self.replicasets.wait_for(written)
