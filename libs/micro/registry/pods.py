"""Discovery from Pods labelled <prefix>-service-app=<service>, one watch per service."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import kubernetes.client

from micro.kube import PODS, Backoff, InformerEvent
from micro.registry.base import ServiceInstance
from micro.registry.labels import RegistryKeys
from micro.registry.pod_instances import MalformedPod, pod_instance
from micro.registry.watched import WatchedDiscovery, WatchedService

log = logging.getLogger("micro.registry.pods")


class PodDiscovery(WatchedDiscovery):
    """Routable Pods of each service in one namespace (never cluster-wide); a Pod with
    the service's labels under another service account is skipped, once reported."""

    resource = PODS

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        namespace: str,
        *,
        keys: RegistryKeys | None = None,
        accounts: Mapping[str, str] | None = None,
        sync_limit_s: float = 5.0,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(
            api, namespace, accounts=accounts, sync_limit_s=sync_limit_s, backoff=backoff
        )
        self._keys = keys or RegistryKeys()
        # Per service: the instance each Pod stands for (None: not routable), and the
        # malformed Pods already warned about, so each one is reported once.
        self._by_pod: dict[str, dict[str, ServiceInstance | None]] = {}
        self._warned: dict[str, dict[str, str]] = {}

    def _label_selector(self, service_name: str) -> str:
        return self._keys.app_selector(service_name)

    def _routable(
        self, watched: WatchedService, events: Sequence[InformerEvent]
    ) -> list[ServiceInstance]:
        by_pod = self._by_pod.setdefault(watched.name, {})
        warned = self._warned.setdefault(watched.name, {})
        for event in events:
            if event.type == "DELETED":
                by_pod.pop(event.key, None)
                warned.pop(event.key, None)
                watched.forgery.forget(event.key)
                continue
            expected = self._accounts.expected(watched.name)
            if not watched.forgery.allows(event.key, event.object, expected):
                by_pod[event.key] = None
                continue
            try:
                by_pod[event.key] = pod_instance(event.object, self._keys)
                warned.pop(event.key, None)
            except MalformedPod as error:
                by_pod[event.key] = None
                if warned.get(event.key) != str(error):
                    warned[event.key] = str(error)
                    log.warning("registry: pod %s skipped: %s", event.key, error)
        return [instance for instance in by_pod.values() if instance is not None]
