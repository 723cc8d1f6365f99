"""The components of the one-node cluster in one process: controllers, kubelet, proxy."""

from __future__ import annotations

import asyncio
import logging
import pathlib
from dataclasses import dataclass

import kubernetes.client

from devcluster.runner.controllers.deployment import DeploymentController
from devcluster.runner.controllers.endpointslice import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    EndpointSliceController,
)
from devcluster.runner.controllers.garbage import GarbageCollector
from devcluster.runner.controllers.replicaset import ReplicaSetController
from devcluster.runner.controllers.scheduler import Scheduler
from devcluster.runner.events import expire_events_forever
from devcluster.runner.informer import Informer
from devcluster.runner.kube import (
    DEPLOYMENT,
    ENDPOINTSLICE,
    EVENT,
    POD,
    REPLICASET,
    SERVICE,
    Kube,
)
from devcluster.runner.kubelet.container import Backoff
from devcluster.runner.kubelet.images import ImageMap
from devcluster.runner.kubelet.kubelet import Kubelet
from devcluster.runner.proxy import NodePortProxy
from devcluster.runner.workqueue import WorkQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeOptions:
    api_host: str
    api_port: int
    ca_file: pathlib.Path
    state_dir: pathlib.Path
    images: pathlib.Path
    node_name: str = "devcluster"
    node_address: str = "127.0.0.1"
    pod_network: str = "127.0.1.0/24"
    restart_backoff_s: float = 10.0


class Node:
    """Everything that a control plane's controllers and a node's kubelet and
    kube-proxy would do, each as an API client over HTTPS."""

    def __init__(self, api_client: kubernetes.client.ApiClient, options: NodeOptions) -> None:
        self.options = options
        self.kube = Kube(api_client)
        kube = self.kube
        self.pods = Informer(kube, POD)
        self.replicasets = Informer(kube, REPLICASET)
        self.deployments = Informer(kube, DEPLOYMENT)
        self.services = Informer(kube, SERVICE)
        self.events = Informer(kube, EVENT)  # for the availability reports
        self.slices = Informer(
            kube, ENDPOINTSLICE, label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}"
        )
        self.queues: list[WorkQueue] = [
            ReplicaSetController(kube, self.replicasets, self.pods).queue,
            DeploymentController(kube, self.deployments, self.replicasets, self.pods).queue,
            EndpointSliceController(kube, self.services, self.pods, self.slices).queue,
            Scheduler(kube, self.pods, options.node_name).queue,
            GarbageCollector(kube, self.replicasets, self.deployments).queue,
            GarbageCollector(kube, self.pods, self.replicasets).queue,
            GarbageCollector(kube, self.slices, self.services).queue,
        ]
        self.kubelet = Kubelet(
            kube,
            node_name=options.node_name,
            node_address=options.node_address,
            pod_network=options.pod_network,
            api_host=options.api_host,
            api_port=options.api_port,
            ca_data=options.ca_file.read_bytes(),
            state_dir=options.state_dir,
            images=ImageMap.load(options.images),
            backoff=Backoff(initial_s=options.restart_backoff_s),
        )
        self.proxy = NodePortProxy(
            kube, options.node_address, self.services, self.slices, options.node_name
        )
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def informers(self) -> list[Informer]:
        return [
            self.pods,
            self.replicasets,
            self.deployments,
            self.services,
            self.slices,
            self.events,
        ]

    async def start(self) -> None:
        await self.kubelet.start()
        for informer in self.informers:
            informer.start()
        for informer in self.informers:
            await informer.wait_synced()
        self._tasks = [asyncio.create_task(q.run(), name=q.name) for q in self.queues]
        self._tasks.append(asyncio.create_task(expire_events_forever(self.kube), name="events"))
        await self.proxy.sync()

    async def stop(self) -> None:
        """Stop reconciling first, then every pod's processes, then the listeners."""
        for informer in self.informers:
            informer.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.kubelet.shutdown()
        await self.proxy.close()
