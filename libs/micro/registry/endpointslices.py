"""Discovery from the EndpointSlices of a Kubernetes Service: needs only read access to
endpointslices and pods, no pod patching."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import kubernetes.client

from micro.kube import ENDPOINT_SLICES, PODS, Backoff, Informer, InformerEvent, JsonObject
from micro.registry.base import InstancesListener, ServiceInstance
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


def slice_instances(
    service_name: str, slices: Sequence[JsonObject], admit: Callable[[JsonObject], bool]
) -> list[ServiceInstance]:
    """The instances of a Service from all its slices, merged; only endpoints that
    `admit(endpoint)` accepts count.

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
            if not addresses or not admit(endpoint):
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
    """Routable endpoints of the Service named after each asked-for service.

    EndpointSlices carry no service account, and anyone who can label a Pod can put it
    behind a Service's selector; so an endpoint counts only when its targetRef is a Pod
    of this namespace, known from a watch of the namespace's pods (read-only), with the
    same uid, running as the service's account. Unknown or wrong: skipped.
    """

    resource = ENDPOINT_SLICES

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        namespace: str,
        *,
        accounts: Mapping[str, str] | None = None,
        sync_limit_s: float = 5.0,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(
            api, namespace, accounts=accounts, sync_limit_s=sync_limit_s, backoff=backoff
        )
        self._pods = Informer(api, PODS, namespace=namespace, backoff=backoff)
        self._pods_started: asyncio.Task[None] | None = None

    def _label_selector(self, service_name: str) -> str:
        return f"{SERVICE_NAME_LABEL}={short_name(service_name)}"

    async def instances(self, service_name: str) -> list[ServiceInstance]:
        await self._follow_pods()
        await self._pods.wait_synced(self._sync_limit_s)
        return await super().instances(service_name)

    def subscribe(self, service_name: str, listener: InstancesListener) -> Callable[[], None]:
        self._follow_pods()
        return super().subscribe(service_name, listener)

    async def close(self) -> None:
        await super().close()
        if self._pods_started is not None:
            await self._pods_started
            await self._pods.stop()

    def _follow_pods(self) -> asyncio.Task[None]:
        """Start the pods watch (once); the task that starts it."""
        if self._closed:
            raise RuntimeError("discovery is closed")
        if self._pods_started is None:
            self._pods.subscribe(self._pods_changed)
            self._pods_started = asyncio.get_running_loop().create_task(self._pods.start())
        return self._pods_started

    def _pods_changed(self, events: Sequence[InformerEvent]) -> None:
        for event in events:
            if event.type == "DELETED":
                for watched in self._services.values():
                    watched.forgery.forget(event.key)
        for watched in list(self._services.values()):
            self._changed(watched, events)

    def _routable(
        self, watched: WatchedService, events: Sequence[InformerEvent]
    ) -> list[ServiceInstance]:
        pods = self._pods.snapshot()
        expected = self._accounts.expected(watched.name)

        def admit(endpoint: JsonObject) -> bool:
            target = endpoint.get("targetRef") or {}
            if target.get("kind") != "Pod" or target.get("namespace", self._namespace) != (
                self._namespace
            ):
                return False
            key = f"{self._namespace}/{target.get('name', '')}"
            pod = pods.get(key)
            if pod is None:
                return False  # not known (yet, or any more): no account to check
            uid = (pod.get("metadata") or {}).get("uid")
            if target.get("uid") and uid and target["uid"] != uid:
                return False  # a newer Pod under the same name: wait for the slice
            return watched.forgery.allows(key, pod, expected)

        return slice_instances(watched.name, list(watched.informer.snapshot().values()), admit)
