"""Service registration and discovery."""

from micro.registry.base import Discovery, InstancesListener, Registrar, ServiceInstance
from micro.registry.endpoints import EndpointError, format_endpoint, grpc_target, parse_endpoint
from micro.registry.endpointslices import EndpointSliceDiscovery
from micro.registry.factory import registry_from_config
from micro.registry.labels import LabelValueError, RegistryKeys, instance_id
from micro.registry.pod_registrar import PodRegistrar
from micro.registry.pods import PodDiscovery
from micro.registry.static import NoopRegistrar, StaticDiscovery

__all__ = [
    "Discovery",
    "EndpointError",
    "EndpointSliceDiscovery",
    "InstancesListener",
    "LabelValueError",
    "NoopRegistrar",
    "PodDiscovery",
    "PodRegistrar",
    "Registrar",
    "RegistryKeys",
    "ServiceInstance",
    "StaticDiscovery",
    "format_endpoint",
    "grpc_target",
    "instance_id",
    "parse_endpoint",
    "registry_from_config",
]
