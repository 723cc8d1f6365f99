"""Pod discovery against the devcluster API over HTTPS through the official client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import kubernetes.client
import pytest
from prometheus_client import REGISTRY

from devcluster.testing import RunningDevCluster
from micro.kube import Backoff
from micro.registry import PodDiscovery, RegistryKeys, ServiceInstance

SERVICE = "go-micro.user-srv"
PROTOCOLS = {"gomicro-service-protocols": '{"9090": "grpc"}\n'}
FAST = Backoff(base=0.02, cap=0.5)


def labels(pod: str, app: str = SERVICE, prefix: str = "gomicro") -> dict[str, str]:
    return {
        f"{prefix}-service-id": f"{pod}.{app}",
        f"{prefix}-service-app": app,
        f"{prefix}-service-version": "v1.0.0",
    }


@pytest.fixture
async def discovery(pods: Any) -> AsyncIterator[PodDiscovery]:
    found = PodDiscovery(pods.api, pods.namespace, backoff=FAST)
    yield found
    await found.close()


def ids(instances: list[ServiceInstance]) -> list[str]:
    return sorted(i.id for i in instances)


def current(discovery: PodDiscovery, service: str = SERVICE) -> list[str]:
    watched = discovery._services.get(service)
    return [] if watched is None else ids(watched.instances)


async def test_only_running_ready_pods_are_discovered(
    pods: Any, discovery: PodDiscovery, eventually: Any
) -> None:
    pods.create("user-1", labels=labels("user-1"), annotations=PROTOCOLS)
    pods.create("user-2", labels=labels("user-2"), annotations=PROTOCOLS)
    assert await discovery.instances(SERVICE) == []  # Pending: not routable
    pods.run("user-1", "127.0.1.1")
    pods.run("user-2", "127.0.1.2", ready=False)
    await eventually(lambda: current(discovery) == [f"user-1.{SERVICE}"])
    (instance,) = await discovery.instances(SERVICE)
    assert instance.endpoints == ("grpc://127.0.1.1:9090",)
    assert instance.version == "v1.0.0"
    pods.run("user-2", "127.0.1.2", ready=True)  # readiness flips on
    await eventually(lambda: current(discovery) == [f"user-1.{SERVICE}", f"user-2.{SERVICE}"])
    pods.run("user-1", "127.0.1.1", ready=False)  # and off
    await eventually(lambda: current(discovery) == [f"user-2.{SERVICE}"])


async def test_a_deletion_timestamp_removes_the_pod_at_once(
    pods: Any, discovery: PodDiscovery, eventually: Any
) -> None:
    for n in (1, 2):
        pods.create(f"user-{n}", labels=labels(f"user-{n}"), annotations=PROTOCOLS)
        pods.run(f"user-{n}", f"127.0.2.{n}")
    await discovery.instances(SERVICE)
    await eventually(lambda: len(current(discovery)) == 2)
    pods.delete("user-1")  # graceful: the Pod stays, still Running and Ready
    assert pods.read("user-1").metadata.deletion_timestamp is not None
    await eventually(lambda: current(discovery) == [f"user-2.{SERVICE}"])


async def test_listeners_hear_every_change(
    pods: Any, discovery: PodDiscovery, eventually: Any
) -> None:
    heard: list[list[str]] = []
    discovery.subscribe(SERVICE, lambda instances: heard.append(ids(instances)))
    await discovery.instances(SERVICE)
    pods.create("user-1", labels=labels("user-1"), annotations=PROTOCOLS)
    pods.run("user-1", "127.0.3.1")
    await eventually(lambda: bool(heard) and heard[-1] == [f"user-1.{SERVICE}"])
    pods.delete("user-1", grace_s=0)
    await eventually(lambda: heard[-1] == [])


async def test_selector_transitions_move_a_pod_between_services(pods: Any, eventually: Any) -> None:
    other = "go-micro.token-srv"
    # Both services run as one account here, so the pod may serve either.
    shared = {SERVICE: "shared", other: "shared"}
    discovery = PodDiscovery(pods.api, pods.namespace, accounts=shared, backoff=FAST)
    try:
        pods.create(
            "pod-1", labels=labels("pod-1"), annotations=PROTOCOLS, service_account="shared"
        )
        pods.run("pod-1", "127.0.4.1")
        await discovery.instances(SERVICE)
        await discovery.instances(other)
        await eventually(lambda: current(discovery) == [f"pod-1.{SERVICE}"])
        pods.patch("pod-1", {"labels": labels("pod-1", app=other)})
        await eventually(lambda: current(discovery) == [] and current(discovery, other) != [])
        assert current(discovery, other) == [f"pod-1.{other}"]
        pods.patch("pod-1", {"labels": labels("pod-1")})
        await eventually(lambda: current(discovery) == [f"pod-1.{SERVICE}"])
        assert current(discovery, other) == []
    finally:
        await discovery.close()


async def test_relabelling_a_pod_as_another_service_does_not_route_to_it(
    pods: Any, discovery: PodDiscovery, eventually: Any
) -> None:
    other = "go-micro.token-srv"
    pods.create("pod-1", labels=labels("pod-1"), annotations=PROTOCOLS)  # user-srv's account
    pods.run("pod-1", "127.0.4.2")
    await discovery.instances(SERVICE)
    await discovery.instances(other)
    await eventually(lambda: current(discovery) == [f"pod-1.{SERVICE}"])
    pods.patch("pod-1", {"labels": labels("pod-1", app=other)})
    await eventually(lambda: current(discovery) == [])
    pods.create("token-1", labels=labels("token-1", app=other), annotations=PROTOCOLS)
    pods.run("token-1", "127.0.4.3")
    await eventually(lambda: current(discovery, other) == [f"token-1.{other}"])


async def test_malformed_annotations_skip_that_pod_with_one_warning(
    pods: Any, discovery: PodDiscovery, eventually: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="micro.registry.pods")
    pods.create("good", labels=labels("good"), annotations=PROTOCOLS)
    pods.create("bad", labels=labels("bad"), annotations={"gomicro-service-protocols": "{9090"})
    pods.run("good", "127.0.5.1")
    pods.run("bad", "127.0.5.2")
    await discovery.instances(SERVICE)
    await eventually(lambda: current(discovery) == [f"good.{SERVICE}"])
    for round_ in range(3):  # more updates of the bad pod: still one warning
        pods.patch("bad", {"annotations": {"touched": str(round_)}})
    pods.create("later", labels=labels("later"), annotations=PROTOCOLS)
    pods.run("later", "127.0.5.3")
    await eventually(lambda: current(discovery) == [f"good.{SERVICE}", f"later.{SERVICE}"])
    warnings = [r for r in caplog.records if "bad" in r.getMessage()]
    assert len(warnings) == 1
    assert "gomicro-service-protocols" in warnings[0].getMessage()
    pods.patch("bad", {"annotations": {"gomicro-service-protocols": '{"9090": "grpc"}'}})
    await eventually(lambda: len(current(discovery)) == 3)  # fixed: it joins


async def test_kratos_pods_are_found_with_the_kratos_prefix(pods: Any, eventually: Any) -> None:
    kratos = PodDiscovery(pods.api, pods.namespace, keys=RegistryKeys("kratos"), backoff=FAST)
    pods.create(
        "k-1",
        labels=labels("k-1", prefix="kratos"),
        annotations={"kratos-service-protocols": '{"9000": "grpc", "8000": "http"}'},
    )
    pods.run("k-1", "127.0.6.1")
    try:
        await kratos.instances(SERVICE)
        await eventually(lambda: current(kratos) == [f"k-1.{SERVICE}"])
        (instance,) = await kratos.instances(SERVICE)
        assert instance.endpoints == ("http://127.0.6.1:8000", "grpc://127.0.6.1:9000")
    finally:
        await kratos.close()


async def test_container_port_names_stand_in_for_the_annotation(
    pods: Any, discovery: PodDiscovery, eventually: Any
) -> None:
    pods.create("user-1", labels=labels("user-1"), ports=[("grpc-port", 9090), ("http-port", 8080)])
    pods.run("user-1", "127.0.7.1")
    await discovery.instances(SERVICE)
    await eventually(lambda: current(discovery) == [f"user-1.{SERVICE}"])
    (instance,) = await discovery.instances(SERVICE)
    assert instance.endpoints == ("http://127.0.7.1:8080", "grpc://127.0.7.1:9090")


async def test_an_api_restart_keeps_the_last_instances_then_resumes_with_a_relist(
    pods: Any,
    discovery: PodDiscovery,
    eventually: Any,
    registry_cluster: RunningDevCluster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="micro.kube.informer")
    pods.create("user-1", labels=labels("user-1"), annotations=PROTOCOLS)
    pods.run("user-1", "127.0.8.1")
    await discovery.instances(SERVICE)
    await eventually(lambda: current(discovery) == [f"user-1.{SERVICE}"])
    # Another write after the last pod event: the watch's resourceVersion falls behind the
    # restarted server's replay window, so it must answer 410 and the informer relist.
    pods.core.create_namespaced_config_map(
        pods.namespace,
        kubernetes.client.V1ConfigMap(metadata=kubernetes.client.V1ObjectMeta(name="bump")),
    )
    registry_cluster.stop()
    await eventually(lambda: discovery.last_error(SERVICE) is not None)
    assert await discovery.instances(SERVICE) != []  # the last known state is kept
    assert current(discovery) == [f"user-1.{SERVICE}"]
    registry_cluster.start()
    pods.reconnect()
    pods.create("user-2", labels=labels("user-2"), annotations=PROTOCOLS)
    pods.run("user-2", "127.0.8.2")
    await eventually(lambda: len(current(discovery)) == 2, limit_s=20)
    await eventually(lambda: discovery.last_error(SERVICE) is None)
    assert any("410" in r.getMessage() for r in caplog.records)


async def test_discovery_never_watches_cluster_wide(pods: Any) -> None:
    with pytest.raises(ValueError, match="namespace"):
        PodDiscovery(pods.api, "")


def forged_count() -> float:
    value = REGISTRY.get_sample_value("micro_registry_forged_instances_total", {"service": SERVICE})
    return value or 0.0


async def test_a_pod_with_the_labels_under_another_account_is_skipped_once(
    pods: Any, discovery: PodDiscovery, eventually: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="micro.registry")
    before = forged_count()
    # data-srv's account labels a pod as user-srv: it never becomes an instance.
    pods.create(
        "forged", labels=labels("forged"), annotations=PROTOCOLS, service_account="data-srv"
    )
    pods.create("genuine", labels=labels("genuine"), annotations=PROTOCOLS)
    assert pods.read("genuine").spec.service_account_name == "user-srv"
    pods.run("forged", "127.0.8.1")
    pods.run("genuine", "127.0.8.2")
    await discovery.instances(SERVICE)
    await eventually(lambda: current(discovery) == [f"genuine.{SERVICE}"])
    for round_ in range(3):  # more updates of the forged pod: still one warning, one count
        pods.patch("forged", {"annotations": {"touched": str(round_)}})
    pods.create("later", labels=labels("later"), annotations=PROTOCOLS)
    pods.run("later", "127.0.8.3")
    await eventually(lambda: current(discovery) == [f"genuine.{SERVICE}", f"later.{SERVICE}"])
    warnings = [r.getMessage() for r in caplog.records if "forged" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert f"/forged skipped for {SERVICE}" in warnings[0]
    assert "service account data-srv, not user-srv" in warnings[0]
    assert forged_count() == before + 1


async def test_the_accounts_map_is_applied_while_running(
    pods: Any, discovery: PodDiscovery, eventually: Any
) -> None:
    pods.create("own", labels=labels("own"), annotations=PROTOCOLS)
    pods.create("renamed", labels=labels("renamed"), annotations=PROTOCOLS, service_account="users")
    pods.run("own", "127.0.9.1")
    pods.run("renamed", "127.0.9.2")
    await discovery.instances(SERVICE)
    await eventually(lambda: current(discovery) == [f"own.{SERVICE}"])
    discovery.apply_accounts({SERVICE: "users"})  # registry.accounts changed
    assert current(discovery) == [f"renamed.{SERVICE}"]
    discovery.apply_accounts({})  # back to the default: the short name
    assert current(discovery) == [f"own.{SERVICE}"]
