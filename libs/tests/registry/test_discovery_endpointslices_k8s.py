"""EndpointSlice discovery against the devcluster: conditions, several slices, and the
service account of each endpoint's Pod."""

from __future__ import annotations

import logging
from typing import Any

import kubernetes.client
import pytest
from prometheus_client import REGISTRY

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


def endpoint(ip: str, pod: str, uid: str = "", **conditions: bool) -> dict[str, Any]:
    target = {"kind": "Pod", "name": pod, **({"uid": uid} if uid else {})}
    return {"addresses": [ip], "conditions": {"ready": True, **conditions}, "targetRef": target}


def create_pods(pods: Any, *names: str, account: str = "user-srv") -> None:
    """The Pods the endpoints point at (as the Service's selector would pick them)."""
    for name in names:
        pods.create(name, labels={"app": "user-srv"}, service_account=account)


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
    create_pods(pods, "u1", "u2", "u3")
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


async def test_endpoints_of_pods_under_another_account_are_skipped(
    pods: Any, slices: Any, eventually: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="micro.registry")
    create_pods(pods, "genuine")
    create_pods(pods, "forged", account="data-srv")  # a compromised data-srv's own pod
    genuine_uid = pods.read("genuine").metadata.uid
    forged_before = forged_count()
    discovery = EndpointSliceDiscovery(pods.api, pods.namespace)
    try:
        slices.create_namespaced_endpoint_slice(
            pods.namespace,
            endpoint_slice(
                "user-srv-a",
                [
                    endpoint("127.0.11.1", "genuine", uid=genuine_uid),
                    endpoint("127.0.11.2", "forged"),
                    endpoint("127.0.11.3", "no-such-pod"),  # unknown: no account to check
                    endpoint("127.0.11.4", "genuine", uid="an-older-pod"),  # not that pod
                ],
            ),
        )
        assert [i.endpoints[0] for i in await discovery.instances(SERVICE)] == [
            "grpc://127.0.11.1:9090"
        ]
        for round_ in range(3):  # more updates of the forged pod: still one warning
            pods.patch("forged", {"annotations": {"touched": str(round_)}})
        pods.create("later", labels={"app": "user-srv"}, service_account="user-srv")
        await eventually(lambda: pods_known(discovery, "later"))
        assert current(discovery) == ["grpc://127.0.11.1:9090"]
        warnings = [r.getMessage() for r in caplog.records if "forged" in r.getMessage()]
        assert len(warnings) == 1, warnings
        assert "service account data-srv, not user-srv" in warnings[0]
        assert forged_count() == forged_before + 1
        # registry.accounts is live: naming data-srv turns the choice around.
        discovery.apply_accounts({SERVICE: "data-srv"})
        assert current(discovery) == ["grpc://127.0.11.2:9090"]
    finally:
        await discovery.close()


def pods_known(discovery: EndpointSliceDiscovery, name: str) -> bool:
    return any(key.endswith(f"/{name}") for key in discovery._pods.snapshot())


def forged_count() -> float:
    value = REGISTRY.get_sample_value("micro_registry_forged_instances_total", {"service": SERVICE})
    return value or 0.0
