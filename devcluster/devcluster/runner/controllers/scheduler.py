"""The scheduler of a one-node cluster: bind every unscheduled pod to the node.

Binding goes through the pods/binding subresource, as kube-scheduler does it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from devcluster.runner.informer import Informer, key_of
from devcluster.runner.kube import Kube, Obj
from devcluster.runner.workqueue import WorkQueue

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, kube: Kube, pods: Informer, node_name: str) -> None:
        self.kube = kube
        self.pods = pods
        self.node_name = node_name
        self.queue = WorkQueue("scheduler", self.reconcile)
        pods.add_handler(self._on_pod)

    def _on_pod(self, event_type: str, pod: Obj, _previous: Obj | None) -> None:
        if event_type != "DELETED" and not pod.get("spec", {}).get("nodeName"):
            self.queue.add(key_of(pod))

    async def reconcile(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            return
        scheduler = pod["spec"].get("schedulerName", "default-scheduler")
        if scheduler != "default-scheduler":
            return  # another scheduler's pod
        meta = pod["metadata"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }

        def bind() -> None:
            core: Any = CoreV1Api(self.kube.api_client)  # dict body, raw answer
            response = core.create_namespaced_pod_binding(
                meta["name"], meta["namespace"], binding, _preload_content=False
            )
            response.release_conn()

        try:
            await asyncio.to_thread(bind)
        except ApiException as error:
            if error.status == 404 and self.pods.get(key) is None:
                return
            raise
        log.info("scheduled %s to %s", key, self.node_name)
