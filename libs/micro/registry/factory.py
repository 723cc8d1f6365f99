"""Pick the registry the config asks for."""

from __future__ import annotations

import kubernetes.client

from micro.config.model import RegistryConfig
from micro.kube import KubeSetupError, own_namespace
from micro.registry.base import Discovery, Registrar
from micro.registry.endpointslices import EndpointSliceDiscovery
from micro.registry.labels import RegistryKeys
from micro.registry.pod_registrar import PodRegistrar
from micro.registry.pods import PodDiscovery
from micro.registry.static import NoopRegistrar, StaticDiscovery


def registry_namespace(cfg: RegistryConfig) -> str:
    """registry.k8s.namespace, else the namespace of the own Pod."""
    return cfg.k8s.namespace or own_namespace()


def registry_from_config(
    cfg: RegistryConfig, api: kubernetes.client.ApiClient | None
) -> tuple[Registrar, Discovery]:
    """(Registrar, Discovery) for registry.type: k8s (Pods), endpointslices or static.

    api may be None only for static; build it with micro.kube.kube_client(cfg.k8s).
    """
    if cfg.type == "static":
        return NoopRegistrar(), StaticDiscovery(cfg.services)
    if api is None:
        raise KubeSetupError(f"registry.type {cfg.type} needs a Kubernetes API client")
    namespace = registry_namespace(cfg)
    if cfg.type == "endpointslices":
        # The Service's selector finds the pods; nothing to patch, no pod RBAC needed.
        return NoopRegistrar(), EndpointSliceDiscovery(api, namespace, accounts=cfg.accounts)
    keys = RegistryKeys(cfg.prefix)
    discovery = PodDiscovery(api, namespace, keys=keys, accounts=cfg.accounts)
    return PodRegistrar(api, keys=keys), discovery
