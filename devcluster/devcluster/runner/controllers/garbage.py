"""Garbage collection of what the runner's controllers create.

A dependent whose controlling owner no longer exists is deleted, after checking the
owner with a live GET as the real garbage collector does (a cache may lag behind).
"""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from devcluster.runner import podutil
from devcluster.runner.informer import Informer, key_of
from devcluster.runner.kube import Kind, Kube, Obj
from devcluster.runner.workqueue import WorkQueue


class GarbageCollector:
    """Deletes dependents of one kind whose owner of another kind is gone."""

    def __init__(self, kube: Kube, dependents: Informer, owners: Informer) -> None:
        self.kube = kube
        self.dependents = dependents
        self.owners = owners
        self.queue = WorkQueue(f"gc-{dependents.kind.kind}", self.reconcile)
        dependents.add_handler(self._on_dependent)
        owners.add_handler(self._on_owner)

    def _on_dependent(self, event_type: str, dependent: Obj, _previous: Obj | None) -> None:
        if event_type != "DELETED":
            self.queue.add(key_of(dependent))

    def _on_owner(self, event_type: str, owner: Obj, _previous: Obj | None) -> None:
        if event_type != "DELETED" and not owner["metadata"].get("deletionTimestamp"):
            return
        uid = owner["metadata"]["uid"]
        for dependent in self.dependents.objects(owner["metadata"].get("namespace")):
            if podutil.owner_uid(dependent) == uid:
                self.queue.add(key_of(dependent))

    def _owner_ref(self, dependent: Obj) -> dict[str, str] | None:
        for ref in dependent["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == self.owners.kind.kind:
                return dict(ref)
        return None

    async def reconcile(self, key: str) -> None:
        dependent = self.dependents.get(key)
        if dependent is None or dependent["metadata"].get("deletionTimestamp"):
            return
        ref = self._owner_ref(dependent)
        if ref is None:
            return
        namespace = dependent["metadata"].get("namespace")
        cached = self.owners.get(f"{namespace}/{ref['name']}")
        if cached is not None and cached["metadata"]["uid"] == ref["uid"]:
            if not cached["metadata"].get("deletionTimestamp"):
                return
        elif await self._owner_exists(self.owners.kind, ref, namespace):
            return
        meta = dependent["metadata"]
        await self.kube.delete(
            self.dependents.kind,
            meta["name"],
            namespace,
            uid=meta.get("uid"),
            propagation="Background",
        )

    async def _owner_exists(self, kind: Kind, ref: dict[str, str], namespace: str | None) -> bool:
        try:
            owner = await self.kube.get(kind, ref["name"], namespace)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return bool(owner["metadata"].get("uid") == ref["uid"])
