"""The Roles of .k8s, enforced by the devcluster API: each service account can make the
Kubernetes calls its framework makes and nothing beyond.

The objects are applied as `kubectl apply -f .k8s` would; every call below goes over
HTTPS with the service account's own token (TokenRequest), through the official client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from devcluster.testing import RunningDevCluster, body, running_devcluster
from micro.config.kube import kube_sources
from micro.config.model import RemoteConfig

from .conftest import OWN_SECRETS

NAMESPACE = "go-micro"
RBAC_KINDS = ("Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap")


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    k8s_documents: list[tuple[Path, dict[str, Any]]],
) -> Iterator[RunningDevCluster]:
    with running_devcluster(tmp_path_factory.mktemp("rbac")) as running:
        with running.api_client() as admin:
            core = kubernetes.client.CoreV1Api(admin)
            rbac = kubernetes.client.RbacAuthorizationV1Api(admin)
            create: dict[str, Callable[[dict[str, Any]], object]] = {
                "Namespace": lambda d: core.create_namespace(body(d)),
                "ServiceAccount": lambda d: core.create_namespaced_service_account(
                    NAMESPACE, body(d)
                ),
                "Role": lambda d: rbac.create_namespaced_role(NAMESPACE, body(d)),
                "RoleBinding": lambda d: rbac.create_namespaced_role_binding(NAMESPACE, body(d)),
                "ConfigMap": lambda d: core.create_namespaced_config_map(NAMESPACE, body(d)),
            }
            for _, document in k8s_documents:
                if document["kind"] in RBAC_KINDS:
                    create[document["kind"]](document)
            for service, names in OWN_SECRETS.items():
                for name in names:
                    secret = {"metadata": {"name": name, "labels": {"app": service}}}
                    core.create_namespaced_secret(NAMESPACE, body(secret))
                core.create_namespaced_pod(
                    NAMESPACE,
                    body(
                        {
                            "metadata": {"name": f"{service}-0", "labels": {"app": service}},
                            "spec": {
                                "serviceAccountName": service,
                                "containers": [
                                    {"name": service, "image": f"devexps/{service}:k8s"}
                                ],
                            },
                        }
                    ),
                )
        yield running


@pytest.fixture
def as_service(
    cluster: RunningDevCluster, shipped_service: str
) -> Iterator[kubernetes.client.ApiClient]:
    token = cluster.service_account_token(NAMESPACE, shipped_service)
    with cluster.api_client(token=token) as client:
        yield client


def watch(list_call: Callable[..., Any], namespace: str, **selectors: str) -> None:
    """Open a watch (a 403 raises before any event) and end it after a second."""
    response = list_call(
        namespace, watch=True, timeout_seconds=1, _preload_content=False, **selectors
    )
    response.read()
    response.release_conn()


def status_of(call: Callable[[], object]) -> int:
    try:
        call()
    except ApiException as exc:
        return int(exc.status)
    return 200


def test_registry_discovery_and_config_calls_are_allowed(
    as_service: kubernetes.client.ApiClient, shipped_service: str
) -> None:
    core = kubernetes.client.CoreV1Api(as_service)
    discovery = kubernetes.client.DiscoveryV1Api(as_service)
    own_pod = f"{shipped_service}-0"
    calls: dict[str, Callable[[], object]] = {
        "list pods": lambda: core.list_namespaced_pod(
            NAMESPACE, label_selector="gomicro-service-app=go-micro.device-srv"
        ),
        "watch pods": lambda: watch(core.list_namespaced_pod, NAMESPACE),
        "get own pod": lambda: core.read_namespaced_pod(own_pod, NAMESPACE),
        "register on own pod": lambda: core.patch_namespaced_pod(
            own_pod,
            NAMESPACE,
            {"metadata": {"labels": {"gomicro-service-app": f"go-micro.{shipped_service}"}}},
        ),
        "list endpointslices": lambda: discovery.list_namespaced_endpoint_slice(NAMESPACE),
        "list own configmaps": lambda: core.list_namespaced_config_map(
            NAMESPACE, label_selector=f"app={shipped_service}"
        ),
        "watch own configmaps": lambda: watch(
            core.list_namespaced_config_map, NAMESPACE, label_selector=f"app={shipped_service}"
        ),
        "get own configmap": lambda: core.read_namespaced_config_map(shipped_service, NAMESPACE),
    }
    for name in OWN_SECRETS[shipped_service]:
        calls[f"get secret {name}"] = partial(core.read_namespaced_secret, name, NAMESPACE)
    refused = {what: code for what, call in calls.items() if (code := status_of(call)) != 200}
    assert refused == {}


def test_nothing_beyond_is_granted(
    as_service: kubernetes.client.ApiClient, shipped_service: str
) -> None:
    core = kubernetes.client.CoreV1Api(as_service)
    apps = kubernetes.client.AppsV1Api(as_service)
    others = [n for s, names in OWN_SECRETS.items() if s != shipped_service for n in names]
    calls: dict[str, Callable[[], object]] = {
        "list secrets by label": lambda: core.list_namespaced_secret(
            NAMESPACE, label_selector=f"app={shipped_service}"
        ),
        "list all secrets": lambda: core.list_namespaced_secret(NAMESPACE),
        "delete a pod": lambda: core.delete_namespaced_pod(f"{shipped_service}-0", NAMESPACE),
        "create a pod": lambda: core.create_namespaced_pod(
            NAMESPACE, body({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "x"}]}})
        ),
        "update a configmap": lambda: core.patch_namespaced_config_map(
            shipped_service, NAMESPACE, {"data": {"x": "y"}}
        ),
        "pods in another namespace": lambda: core.list_namespaced_pod("default"),
        "pods cluster-wide": lambda: core.list_pod_for_all_namespaces(),
        "deployments": lambda: apps.list_namespaced_deployment(NAMESPACE),
        "pod status": lambda: core.patch_namespaced_pod_status(
            f"{shipped_service}-0", NAMESPACE, {"status": {"phase": "Running"}}
        ),
    }
    for name in others:
        calls[f"get {name}"] = partial(core.read_namespaced_secret, name, NAMESPACE)
    allowed = [what for what, call in calls.items() if status_of(call) != 403]
    assert allowed == []


@pytest.mark.parametrize(
    "shipped_service", [service for service, names in OWN_SECRETS.items() if names]
)
def test_own_secrets_can_be_listed_and_watched_by_name(
    as_service: kubernetes.client.ApiClient, shipped_service: str
) -> None:
    core = kubernetes.client.CoreV1Api(as_service)
    for name in OWN_SECRETS[shipped_service]:
        selector = f"metadata.name={name}"
        listed = core.list_namespaced_secret(NAMESPACE, field_selector=selector)
        assert [s.metadata and s.metadata.name for s in listed.items] == [name]
        watch(core.list_namespaced_secret, NAMESPACE, field_selector=selector)


async def test_the_image_bootstrap_config_sources_start_under_the_role(
    as_service: kubernetes.client.ApiClient,
    shipped_service: str,
    repo_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ConfigMap and Secret watches that <svc>/configs/k8s/remote.yaml sets up (for
    admin-srv and data-srv: no Secret at all) list and watch under the service's Role."""
    monkeypatch.setattr("micro.config.kube.SYNC_TIMEOUT_S", 3.0)
    bootstrap = yaml.safe_load(
        (repo_root / shipped_service / "configs/k8s/remote.yaml").read_text()
    )
    remote = RemoteConfig.model_validate(bootstrap["remote"])
    assert remote.secrets is not None, "a Role grants Secrets by name only: list them"
    assert sorted(remote.secrets) == sorted(OWN_SECRETS[shipped_service])
    k8s = remote.k8s.model_copy(update={"namespace": NAMESPACE})
    sources = kube_sources(
        remote.model_copy(update={"k8s": k8s}),
        service=f"go-micro.{shipped_service}",
        env={},
        api=as_service,
    )
    started = []
    try:
        for source in sources:
            started.append(source)
            await source.start(lambda: None)  # ConfigError when a list is refused
    finally:
        for source in reversed(started):
            await source.stop()
    assert len(sources) == 1 + len(OWN_SECRETS[shipped_service])
