"""The resource kinds the framework lists and watches, addressed by their REST path."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    """A namespaced resource kind, e.g. Resource("v1", "pods")."""

    group_version: str  # "v1" (core) or "discovery.k8s.io/v1"
    plural: str

    def path(self, namespace: str) -> str:
        """The collection path; an empty namespace means every namespace."""
        root = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        if namespace:
            return f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{root}/{self.plural}"


PODS = Resource("v1", "pods")
CONFIG_MAPS = Resource("v1", "configmaps")
SECRETS = Resource("v1", "secrets")
ENDPOINT_SLICES = Resource("discovery.k8s.io/v1", "endpointslices")
