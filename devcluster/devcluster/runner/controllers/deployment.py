"""The Deployment controller: ReplicaSets per template, rolled as the real one rolls them.

The algorithm follows kube-controller-manager's (pkg/controller/deployment): one
ReplicaSet per distinct pod template, named <deployment>-<pod-template-hash>; on a
template change the new ReplicaSet is scaled up within maxSurge and the old ones down
within maxUnavailable, counting only available pods (ready for minReadySeconds).
"""

from __future__ import annotations

import copy
import json
import logging
import math
from typing import Any

from kubernetes.client.exceptions import ApiException

from devcluster.runner import podutil
from devcluster.runner.informer import Informer, key_of
from devcluster.runner.kube import DEPLOYMENT, MERGE_PATCH, REPLICASET, Kube, Obj
from devcluster.runner.workqueue import WorkQueue

log = logging.getLogger(__name__)

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: Obj, collision_count: int = 0) -> str:
    """FNV-32a over the template, encoded with the API machinery's safe alphabet."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in str(value))


def _without_hash(template: Obj) -> Obj:
    clean = copy.deepcopy(template)
    (clean.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
    return clean


def resolve(value: int | str | None, total: int, *, round_up: bool, default: str) -> int:
    """An IntOrString of maxSurge/maxUnavailable against the replica count."""
    value = default if value is None else value
    if isinstance(value, int):
        return value
    if value.endswith("%"):
        share = int(value[:-1]) * total / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


def surge_and_unavailable(deployment: Obj) -> tuple[int, int]:
    spec = deployment.get("spec", {})
    replicas = int(spec.get("replicas", 1))
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = resolve(rolling.get("maxSurge"), replicas, round_up=True, default="25%")
    unavailable = resolve(rolling.get("maxUnavailable"), replicas, round_up=False, default="25%")
    if surge == 0 and unavailable == 0:
        unavailable = 1  # the API refuses both zero; the controller's guard
    return surge, min(unavailable, replicas)


def _replicas(rs: Obj) -> int:
    return int(rs.get("spec", {}).get("replicas", 0))


def _stat(rs: Obj, field: str) -> int:
    return int((rs.get("status") or {}).get(field, 0))


def _revision(rs: Obj) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


class DeploymentController:
    def __init__(
        self, kube: Kube, deployments: Informer, replicasets: Informer, pods: Informer
    ) -> None:
        self.kube = kube
        self.deployments = deployments
        self.replicasets = replicasets
        self.pods = pods
        self.queue = WorkQueue("deployment", self.reconcile)
        deployments.add_handler(lambda _t, d, _p: self.queue.add(key_of(d)))
        replicasets.add_handler(self._on_replicaset)

    def _on_replicaset(self, _type: str, rs: Obj, _previous: Obj | None) -> None:
        owner = podutil.owner_uid(rs)
        for deployment in self.deployments.objects(rs["metadata"].get("namespace")):
            if deployment["metadata"]["uid"] == owner:
                self.queue.add(key_of(deployment))

    def owned(self, deployment: Obj) -> list[Obj]:
        uid = deployment["metadata"]["uid"]
        return sorted(
            (
                rs
                for rs in self.replicasets.objects(deployment["metadata"]["namespace"])
                if podutil.owner_uid(rs) == uid
            ),
            key=lambda rs: (rs["metadata"].get("creationTimestamp") or "", rs["metadata"]["name"]),
        )

    async def reconcile(self, key: str) -> None:
        deployment = self.deployments.get(key)
        if deployment is None or deployment["metadata"].get("deletionTimestamp"):
            return
        all_rs = self.owned(deployment)
        template = deployment["spec"].get("template") or {}
        new_rs = next(
            (rs for rs in all_rs if _without_hash(rs["spec"].get("template") or {}) == template),
            None,
        )
        old_rs = [rs for rs in all_rs if rs is not new_rs]
        if not deployment["spec"].get("paused"):
            if new_rs is None:
                new_rs = await self._create_new_rs(deployment, old_rs)
                all_rs = [*old_rs, new_rs]
            else:
                await self._bump_revision(new_rs, old_rs)
            strategy = (deployment["spec"].get("strategy") or {}).get("type", "RollingUpdate")
            if strategy == "Recreate":
                await self._recreate(deployment, new_rs, old_rs)
            else:
                await self._rolling(deployment, new_rs, old_rs)
            await self._cleanup(deployment, old_rs)
        await self._write_status(deployment, self.owned(deployment), new_rs)

    # the new ReplicaSet ------------------------------------------------------------------

    async def _create_new_rs(self, deployment: Obj, old_rs: list[Obj]) -> Obj:
        spec = deployment["spec"]
        replicas = int(spec.get("replicas", 1))
        collisions = int((deployment.get("status") or {}).get("collisionCount", 0))
        template = copy.deepcopy(spec.get("template") or {})
        pod_hash = template_hash(template, collisions)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        surge, _ = surge_and_unavailable(deployment)
        strategy = (spec.get("strategy") or {}).get("type", "RollingUpdate")
        if strategy == "Recreate":
            start = 0 if any(_replicas(rs) for rs in old_rs) else replicas
        else:
            current = sum(_replicas(rs) for rs in old_rs)
            start = max(0, min(replicas + surge - current, replicas))
        name = f"{deployment['metadata']['name']}-{pod_hash}"
        body = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": deployment["metadata"]["namespace"],
                "labels": template["metadata"]["labels"],
                "annotations": {
                    REVISION: str(max((_revision(rs) for rs in old_rs), default=0) + 1),
                    DESIRED: str(replicas),
                    MAX_REPLICAS: str(replicas + surge),
                },
                "ownerReferences": [podutil.owner_reference(deployment)],
            },
            "spec": {
                "replicas": start,
                "minReadySeconds": int(spec.get("minReadySeconds", 0)),
                "selector": selector,
                "template": template,
            },
        }
        try:
            created = await self.kube.create(REPLICASET, body, deployment["metadata"]["namespace"])
        except ApiException as error:
            if error.status != 409:
                raise
            # A ReplicaSet of that name with another template: a hash collision.
            await self.kube.patch(
                DEPLOYMENT,
                deployment["metadata"]["name"],
                {"status": {"collisionCount": collisions + 1}},
                deployment["metadata"]["namespace"],
                status=True,
                content_type=MERGE_PATCH,
            )
            raise
        log.info("deployment %s: created replicaset %s", key_of(deployment), name)
        await self.replicasets.wait_for(created)
        return created

    async def _bump_revision(self, new_rs: Obj, old_rs: list[Obj]) -> None:
        """A rollback to an older template makes that ReplicaSet the newest revision."""
        wanted = max((_revision(rs) for rs in old_rs), default=0) + 1
        if _revision(new_rs) >= wanted:
            return
        written = await self.kube.patch(
            REPLICASET,
            new_rs["metadata"]["name"],
            {"metadata": {"annotations": {REVISION: str(wanted)}}},
            new_rs["metadata"]["namespace"],
        )
        await self.replicasets.wait_for(written)

    async def _scale(self, deployment: Obj, rs: Obj, replicas: int) -> None:
        if _replicas(rs) == replicas:
            return
        wanted = int(deployment["spec"].get("replicas", 1))
        surge, _ = surge_and_unavailable(deployment)
        written = await self.kube.patch(
            REPLICASET,
            rs["metadata"]["name"],
            {
                "metadata": {
                    "annotations": {DESIRED: str(wanted), MAX_REPLICAS: str(wanted + surge)}
                },
                "spec": {"replicas": replicas},
            },
            rs["metadata"]["namespace"],
        )
        log.info(
            "deployment %s: scaled %s from %d to %d",
            key_of(deployment),
            rs["metadata"]["name"],
            _replicas(rs),
            replicas,
        )
        await self.replicasets.wait_for(written)

    # strategies ----------------------------------------------------------------------------

    async def _rolling(self, deployment: Obj, new_rs: Obj, old_rs: list[Obj]) -> None:
        wanted = int(deployment["spec"].get("replicas", 1))
        surge, max_unavailable = surge_and_unavailable(deployment)
        # Scale the new ReplicaSet up within maxSurge (or down to the wanted count).
        if _replicas(new_rs) > wanted:
            await self._scale(deployment, new_rs, wanted)
            return
        if _replicas(new_rs) < wanted:
            total = _replicas(new_rs) + sum(_replicas(rs) for rs in old_rs)
            room = wanted + surge - total
            if room > 0:
                await self._scale(
                    deployment, new_rs, _replicas(new_rs) + min(room, wanted - _replicas(new_rs))
                )
                return
        # Scale the old ones down within maxUnavailable.
        all_count = _replicas(new_rs) + sum(_replicas(rs) for rs in old_rs)
        min_available = wanted - max_unavailable
        new_unavailable = _replicas(new_rs) - _stat(new_rs, "availableReplicas")
        budget = all_count - min_available - new_unavailable
        if budget <= 0:
            return
        # First the old pods that are not available anyway.
        for rs in old_rs:
            if budget <= 0:
                break
            unhealthy = _replicas(rs) - _stat(rs, "availableReplicas")
            if unhealthy <= 0 or _replicas(rs) == 0:
                continue
            cut = min(budget, unhealthy)
            await self._scale(deployment, rs, _replicas(rs) - cut)
            budget -= cut
        old_rs = [self.replicasets.get(key_of(rs)) or rs for rs in old_rs]
        available = _stat(new_rs, "availableReplicas") + sum(
            _stat(rs, "availableReplicas") for rs in old_rs
        )
        if available <= min_available:
            return
        budget = available - min_available
        for rs in old_rs:  # oldest first
            if budget <= 0:
                break
            if _replicas(rs) == 0:
                continue
            cut = min(budget, _replicas(rs))
            await self._scale(deployment, rs, _replicas(rs) - cut)
            budget -= cut

    async def _recreate(self, deployment: Obj, new_rs: Obj, old_rs: list[Obj]) -> None:
        for rs in old_rs:
            await self._scale(deployment, rs, 0)
        old_uids = {rs["metadata"]["uid"] for rs in old_rs}
        if any(
            podutil.owner_uid(pod) in old_uids
            for pod in self.pods.objects(deployment["metadata"]["namespace"])
        ):
            return  # wait until every old pod is gone
        await self._scale(deployment, new_rs, int(deployment["spec"].get("replicas", 1)))

    async def _cleanup(self, deployment: Obj, old_rs: list[Obj]) -> None:
        limit = int(deployment["spec"].get("revisionHistoryLimit", 10))
        idle = [rs for rs in old_rs if _replicas(rs) == 0 and _stat(rs, "replicas") == 0]
        idle.sort(key=_revision)
        for rs in idle[: max(0, len(idle) - limit)]:
            await self.kube.delete(REPLICASET, rs["metadata"]["name"], rs["metadata"]["namespace"])

    # status ---------------------------------------------------------------------------------

    async def _write_status(self, deployment: Obj, all_rs: list[Obj], new_rs: Obj | None) -> None:
        wanted = int(deployment["spec"].get("replicas", 1))
        _, max_unavailable = surge_and_unavailable(deployment)
        replicas = sum(_stat(rs, "replicas") for rs in all_rs)
        updated = _stat(new_rs, "replicas") if new_rs is not None else 0
        available = sum(_stat(rs, "availableReplicas") for rs in all_rs)
        current = deployment.get("status") or {}
        status: dict[str, Any] = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": sum(_stat(rs, "readyReplicas") for rs in all_rs),
            "availableReplicas": available,
            "unavailableReplicas": max(0, wanted - available),
            "terminatingReplicas": sum(_stat(rs, "terminatingReplicas") for rs in all_rs),
        }
        if "collisionCount" in current:
            status["collisionCount"] = current["collisionCount"]
        complete = updated == wanted and replicas == wanted and available == wanted
        available_ok = available >= wanted - max_unavailable
        new_name = new_rs["metadata"]["name"] if new_rs is not None else ""
        status["conditions"] = [
            self._condition(
                current,
                "Available",
                available_ok,
                "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if available_ok
                else "Deployment does not have minimum availability.",
            ),
            self._condition(
                current,
                "Progressing",
                True,
                "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                f'ReplicaSet "{new_name}" has successfully progressed.'
                if complete
                else f'ReplicaSet "{new_name}" is progressing.',
            ),
        ]
        if _same_status(current, status):
            return
        annotations = {}
        if new_rs is not None:
            annotations[REVISION] = str(_revision(new_rs))
        if annotations != {
            k: v
            for k, v in (deployment["metadata"].get("annotations") or {}).items()
            if k == REVISION
        }:
            await self.kube.patch(
                DEPLOYMENT,
                deployment["metadata"]["name"],
                {"metadata": {"annotations": annotations}},
                deployment["metadata"]["namespace"],
            )
        written = await self.kube.patch(
            DEPLOYMENT,
            deployment["metadata"]["name"],
            {"status": status},
            deployment["metadata"]["namespace"],
            status=True,
            content_type=MERGE_PATCH,
        )
        await self.deployments.wait_for(written)

    @staticmethod
    def _condition(current: Obj, kind: str, ok: bool, reason: str, message: str) -> Obj:
        stamp = podutil.timestamp()
        previous = next((c for c in current.get("conditions") or [] if c.get("type") == kind), None)
        value = "True" if ok else "False"
        transition = stamp
        if previous is not None and previous.get("status") == value:
            transition = previous.get("lastTransitionTime", stamp)
        update = stamp
        if (
            previous is not None
            and previous.get("reason") == reason
            and previous.get("status") == value
        ):
            update = previous.get("lastUpdateTime", stamp)
        return {
            "type": kind,
            "status": value,
            "reason": reason,
            "message": message,
            "lastUpdateTime": update,
            "lastTransitionTime": transition,
        }


def _same_status(current: Obj, wanted: Obj) -> bool:
    for key, value in wanted.items():
        if key == "conditions":
            strip = [
                {k: v for k, v in c.items() if k not in ("lastUpdateTime", "lastTransitionTime")}
                for c in value
            ]
            have = [
                {k: v for k, v in c.items() if k not in ("lastUpdateTime", "lastTransitionTime")}
                for c in current.get("conditions") or []
            ]
            if strip != have:
                return False
        elif current.get(key, 0) != value:
            return False
    return True
