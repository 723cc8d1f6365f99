"""The static registry: addresses from config, for runs without an API."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from micro.config.model import RegistryConfig
from micro.kube import KubeSetupError
from micro.registry import EndpointError, ServiceInstance, StaticDiscovery, registry_from_config


def static_config(*endpoints: str) -> RegistryConfig:
    return RegistryConfig.model_validate(
        {
            "type": "static",
            "services": [{"name": "go-micro.user-srv", "endpoints": list(endpoints)}],
        }
    )


async def test_static_discovery_lists_one_instance_per_address() -> None:
    registrar, discovery = registry_from_config(
        static_config("grpc://127.0.0.1:9090", "127.0.0.2:9091"), None
    )
    instances = await discovery.instances("go-micro.user-srv")
    assert [i.endpoints for i in instances] == [
        ("grpc://127.0.0.1:9090",),
        ("grpc://127.0.0.2:9091",),
    ]
    assert len({i.id for i in instances}) == 2
    assert await discovery.instances("go-micro.token-srv") == []
    instance = ServiceInstance("x", "go-micro.user-srv", "v1")
    await registrar.register(instance)  # nothing to publish to: must not fail
    await registrar.deregister(instance)
    await discovery.close()


def test_a_bad_static_address_fails_at_start_naming_it() -> None:
    with pytest.raises(EndpointError, match="grpc://nowhere"):
        StaticDiscovery(static_config("grpc://nowhere").services)


def test_kubernetes_registries_need_an_api_client() -> None:
    with pytest.raises(KubeSetupError, match="k8s"):
        registry_from_config(RegistryConfig(type="k8s"), None)


def test_unknown_registry_types_are_refused_by_the_model() -> None:
    with pytest.raises(ValidationError):
        RegistryConfig.model_validate({"type": "consul"})
