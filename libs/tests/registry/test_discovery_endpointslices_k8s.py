"""EndpointSlice discovery against the devcluster: conditions and several slices."""

from __future__ import annotations

from typing import Any

import kubernetes.client
import pytest

from micro.config.model import RegistryConfig
from micro.registry import EndpointSliceDiscovery, NoopRegistrar, registry_from_config

SERVICE = "go-micro.user-srv"


def endpoint_slice(name: str, endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "user-srv"}},
        "addressType": "IPv4",
        "ports": [{"name": "user-srv-grpc", "port": 9090, "protocol": "TCP"}],
        "endpoints": endpoints,
    }


def endpoint(ip: str, pod: str, **conditions: bool) -> dict[str, Any]:
    return {
        "addresses": [ip],
        "conditions": {"ready": True, **conditions},
        "targetRef": {"kind": "Pod", "name": pod},
    }


@pytest.fixture
def slices(pods: Any) -> Any:
    return kubernetes.client.DiscoveryV1Api(pods.api)


def current(discovery: EndpointSliceDiscovery) -> list[str]:
    watched = discovery._services.get(SERVICE)
    return [] if watched is None else sorted(i.endpoints[0] for i in watched.instances)


async def test_slices_are_merged_and_conditions_honoured(
    pods: Any, slices: Any, eventually: Any
) -> None:
    cfg = RegistryConfig.model_validate(
        {"type": "endpointslices", "k8s": {"namespace": pods.namespace}}
    )
    registrar, discovery = registry_from_config(cfg, pods.api)
    assert isinstance(registrar, NoopRegistrar)  # no pod patching in this mode
    assert isinstance(discovery, EndpointSliceDiscovery)
    try:
        slices.create_namespaced_endpoint_slice(
            pods.namespace,
            endpoint_slice(
                "user-srv-a",
                [endpoint("127.0.10.1", "u1"), endpoint("127.0.10.2", "u2", ready=False)],
            ),
        )
        slices.create_namespaced_endpoint_slice(
            pods.namespace, endpoint_slice("user-srv-b", [endpoint("127.0.10.3", "u3")])
        )
        await discovery.instances(SERVICE)
        await eventually(
            lambda: current(discovery) == ["grpc://127.0.10.1:9090", "grpc://127.0.10.3:9090"]
        )
        assert {i.id for i in await discovery.instances(SERVICE)} == {
            f"u1.{SERVICE}",
            f"u3.{SERVICE}",
        }
        # u1 starts terminating; u2 becomes ready.
        slices.patch_namespaced_endpoint_slice(
            "user-srv-a",
            pods.namespace,
            {
                "endpoints": [
                    endpoint("127.0.10.1", "u1", ready=False, serving=True, terminating=True),
                    endpoint("127.0.10.2", "u2"),
                ]
            },
            _content_type="application/merge-patch+json",
        )
        await eventually(
            lambda: current(discovery) == ["grpc://127.0.10.2:9090", "grpc://127.0.10.3:9090"]
        )
        slices.delete_namespaced_endpoint_slice("user-srv-b", pods.namespace)
        await eventually(lambda: current(discovery) == ["grpc://127.0.10.2:9090"])
    finally:
        await discovery.close()
