"""Registration by labelling the service's own Pod, as Go-Micro on Kubernetes does."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import kubernetes.client

from micro.kube import own_pod
from micro.registry.base import ServiceInstance
from micro.registry.endpoints import parse_endpoint
from micro.registry.labels import RegistryKeys, check_label_value

log = logging.getLogger("micro.registry.pods")


class PodRegistrar:
    """Patches the own Pod with the <prefix>-service-* labels and annotations.

    The protocols annotation comes from the instance's endpoints (the ports the servers
    really bound); deregistration sends nulls, so the keys are removed, not blanked.
    """

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        *,
        keys: RegistryKeys | None = None,
        pod: Callable[[], tuple[str, str]] = own_pod,
    ) -> None:
        self._core = kubernetes.client.CoreV1Api(api)
        self._keys = keys or RegistryKeys()
        self._pod = pod

    def validate(self, instance: ServiceInstance) -> None:
        """Raise LabelValueError / EndpointError naming the bad value; call it at start."""
        check_label_value(self._keys.id, instance.id)
        check_label_value(self._keys.app, instance.name)
        check_label_value(self._keys.version, instance.version)
        for endpoint in instance.endpoints:
            parse_endpoint(endpoint)

    def patch_for(self, instance: ServiceInstance | None) -> dict[str, Any]:
        """The merge patch that registers instance, or with None removes every key."""
        labels: dict[str, str | None] = dict.fromkeys(
            (self._keys.id, self._keys.app, self._keys.version)
        )
        annotations: dict[str, str | None] = dict.fromkeys(
            (self._keys.metadata, self._keys.protocols)
        )
        if instance is not None:
            protocols = {}
            for endpoint in instance.endpoints:
                scheme, _, port = parse_endpoint(endpoint)
                protocols[str(port)] = scheme
            labels = {
                self._keys.id: instance.id,
                self._keys.app: instance.name,
                self._keys.version: instance.version,
            }
            annotations = {
                self._keys.metadata: json.dumps(instance.metadata, sort_keys=True),
                self._keys.protocols: json.dumps(protocols, sort_keys=True),
            }
        return {"metadata": {"labels": labels, "annotations": annotations}}

    async def register(self, instance: ServiceInstance) -> None:
        self.validate(instance)
        namespace, name = self._pod()
        await self._patch(namespace, name, self.patch_for(instance))
        log.info(
            "registry: registered %s as %s on pod %s/%s",
            instance.name,
            instance.id,
            namespace,
            name,
        )

    async def deregister(self, instance: ServiceInstance) -> None:
        namespace, name = self._pod()
        await self._patch(namespace, name, self.patch_for(None))
        log.info("registry: deregistered %s from pod %s/%s", instance.id, namespace, name)

    async def _patch(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        await asyncio.to_thread(
            self._core.patch_namespaced_pod,
            name,
            namespace,
            body,
            _content_type="application/merge-patch+json",
        )
