"""The kubelet: registers the node, runs the pods bound to it, and stops them all.

It watches pods with spec.nodeName=<node>, as a real kubelet does, and ConfigMaps and
Secrets so that env and volumes resolve from a cache (and volumes follow updates).
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
from collections.abc import Coroutine
from typing import Any

from kubernetes.client.exceptions import ApiException

from devcluster.runner import podutil
from devcluster.runner.events import EventRecorder
from devcluster.runner.informer import Informer, key_of
from devcluster.runner.kube import CONFIGMAP, MERGE_PATCH, NODE, POD, SECRET, Kind, Kube, Obj
from devcluster.runner.kubelet.container import Backoff
from devcluster.runner.kubelet.env import EnvError
from devcluster.runner.kubelet.images import ImageMap
from devcluster.runner.kubelet.ipam import AddressPool
from devcluster.runner.kubelet.pod_worker import NodeContext, PodWorker
from devcluster.runner.kubelet.tokens import refresh_cap

log = logging.getLogger(__name__)

SERVICEACCOUNT = Kind("v1", "ServiceAccount")
# On node shutdown pods get at most this long to stop (graceful node shutdown).
SHUTDOWN_GRACE_S = 10.0


class Kubelet:
    def __init__(
        self,
        kube: Kube,
        *,
        node_name: str,
        node_address: str,
        pod_network: str,
        api_host: str,
        api_port: int,
        ca_data: bytes,
        state_dir: pathlib.Path,
        images: ImageMap,
        backoff: Backoff,
    ) -> None:
        self.kube = kube
        self.node_name = node_name
        self.pods = Informer(kube, POD, field_selector=f"spec.nodeName={node_name}")
        self.configmaps = Informer(kube, CONFIGMAP)
        self.secrets = Informer(kube, SECRET)
        self.serviceaccounts = Informer(kube, SERVICEACCOUNT)
        self.context = NodeContext(
            kube=kube,
            node_name=node_name,
            node_address=node_address,
            api_host=api_host,
            api_port=api_port,
            ca_data=ca_data,
            pods_dir=state_dir / "pods",
            logs_dir=state_dir / "logs",
            addresses=AddressPool(pod_network, {node_address}),
            images=images,
            lookup=self._lookup,
            backoff=backoff,
            events=EventRecorder(kube, "kubelet", node_name),
            token_refresh_cap_s=refresh_cap(),
        )
        self.workers: dict[str, PodWorker] = {}
        self._shutting_down = False
        self.pods.add_handler(self._on_pod)
        self.configmaps.add_handler(lambda t, o, _p: self._on_source("ConfigMap", o))
        self.secrets.add_handler(lambda t, o, _p: self._on_source("Secret", o))
        self._background: set[asyncio.Task[None]] = set()

    @property
    def informers(self) -> list[Informer]:
        return [self.configmaps, self.secrets, self.serviceaccounts, self.pods]

    def _lookup(self, kind: str, namespace: str, name: str) -> Obj | None:
        informer = {
            "ConfigMap": self.configmaps,
            "Secret": self.secrets,
            "ServiceAccount": self.serviceaccounts,
        }[kind]
        return informer.get(f"{namespace}/{name}")

    async def start(self) -> None:
        await self.register_node()
        for informer in self.informers[:3]:
            informer.start()
        for informer in self.informers[:3]:
            await informer.wait_synced()
        self.pods.start()  # pods last: their env and volumes resolve from the caches
        await self.pods.wait_synced()

    async def register_node(self) -> None:
        """The Node object, Ready, with the node address as InternalIP."""
        now = podutil.timestamp()
        status = {
            "addresses": [
                {"type": "InternalIP", "address": self.context.node_address},
                {"type": "Hostname", "address": self.node_name},
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "nodeInfo": {
                "kubeletVersion": "devcluster",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "containerRuntimeVersion": "devcluster://local-process",
                "kernelVersion": "",
                "osImage": "",
                "kubeProxyVersion": "",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "node-role.kubernetes.io/control-plane": "",
                },
            },
        }
        try:
            await self.kube.create(NODE, body)
        except ApiException as error:
            if error.status != 409:
                raise
        await self.kube.patch(
            NODE, self.node_name, {"status": status}, status=True, content_type=MERGE_PATCH
        )

    # pods -----------------------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _on_pod(self, event_type: str, pod: Obj, _previous: Obj | None) -> None:
        if self._shutting_down:
            return
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if event_type == "DELETED":
            # Removed from the API (a forced delete, or our own final DELETE).
            if worker is not None:
                self._spawn(self._finish(worker, delete=False))
            return
        if worker is None:
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                if podutil.is_terminating(pod):
                    self._spawn(self._delete_finished(pod))
                return
            worker = PodWorker(self.context, pod)
            self.workers[uid] = worker
            worker.start()
            log.info("pod %s: starting", key_of(pod))
        else:
            worker.update(pod)
        if podutil.is_terminating(pod) and not worker.terminating:
            self._spawn(self._finish(worker, delete=True))

    async def _finish(self, worker: PodWorker, *, delete: bool) -> None:
        log.info("pod %s: stopping (grace %.0fs)", worker.key, worker._grace_s())
        await worker.terminate(delete=delete)
        self.workers.pop(worker.uid, None)
        self.context.events.forget(worker.uid)
        worker.remove_logs()

    async def _delete_finished(self, pod: Obj) -> None:
        meta = pod["metadata"]
        await self.kube.delete(
            POD, meta["name"], meta["namespace"], grace_period_seconds=0, uid=meta["uid"]
        )

    # ConfigMap and Secret volumes follow their sources ------------------------------------------

    def _on_source(self, kind: str, obj: Obj) -> None:
        namespace, name = obj["metadata"].get("namespace"), obj["metadata"]["name"]
        for worker in list(self.workers.values()):
            if worker.pod["metadata"]["namespace"] != namespace or worker.files is None:
                continue
            for volume in worker.pod["spec"].get("volumes") or []:
                if _refers_to(volume, kind, name):
                    try:
                        worker.files.write_volume(volume)
                    except (EnvError, OSError) as error:
                        log.warning("pod %s: volume %s: %s", worker.key, volume["name"], error)

    # shutdown -------------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop every pod's processes (node shutdown: the API objects stay)."""
        self._shutting_down = True
        for informer in self.informers:
            informer.stop()
        workers = list(self.workers.values())
        await asyncio.gather(
            *(
                w.terminate(delete=False, grace_s=min(w._grace_s(), SHUTDOWN_GRACE_S))
                for w in workers
            ),
            return_exceptions=True,
        )
        for task in list(self._background):
            task.cancel()
        await self.context.events.close()


def _refers_to(volume: Obj, kind: str, name: str) -> bool:
    if kind == "ConfigMap" and (volume.get("configMap") or {}).get("name") == name:
        return True
    if kind == "Secret" and (volume.get("secret") or {}).get("secretName") == name:
        return True
    key = "configMap" if kind == "ConfigMap" else "secret"
    return any(
        (source.get(key) or {}).get("name") == name
        for source in (volume.get("projected") or {}).get("sources") or []
    )
