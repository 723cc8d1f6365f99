"""The pod registrar with the pod's own service-account credentials, in-cluster style."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from devcluster.testing import RunningDevCluster
from micro.config.model import KubernetesConfig, RegistryConfig
from micro.kube import kube_client, own_pod
from micro.registry import LabelValueError, PodRegistrar, ServiceInstance, registry_from_config

SERVICE = "go-micro.user-srv"


def grant(pods: Any, account: str, verbs: list[str]) -> None:
    """A ServiceAccount allowed `verbs` on pods in the test namespace."""
    rbac = kubernetes.client.RbacAuthorizationV1Api(pods.api)
    meta = kubernetes.client.V1ObjectMeta
    pods.core.create_namespaced_service_account(
        pods.namespace, kubernetes.client.V1ServiceAccount(metadata=meta(name=account))
    )
    rbac.create_namespaced_role(
        pods.namespace,
        kubernetes.client.V1Role(
            metadata=meta(name=account),
            rules=[
                kubernetes.client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=verbs)
            ],
        ),
    )
    rbac.create_namespaced_role_binding(
        pods.namespace,
        kubernetes.client.V1RoleBinding(
            metadata=meta(name=account),
            role_ref=kubernetes.client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name=account
            ),
            subjects=[
                kubernetes.client.RbacV1Subject(
                    kind="ServiceAccount", name=account, namespace=pods.namespace
                )
            ],
        ),
    )


@pytest.fixture
def in_pod(
    pods: Any,
    registry_cluster: RunningDevCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """Make this process look like it runs in pod "user-1": the service-account folder
    (KUBE_SERVICEACCOUNT_DIR), KUBERNETES_SERVICE_HOST/PORT and POD_NAME."""

    def enter(account: str, verbs: list[str]) -> None:
        grant(pods, account, verbs)
        folder = tmp_path / "serviceaccount"
        folder.mkdir()
        token = registry_cluster.service_account_token(pods.namespace, account)
        (folder / "token").write_text(token)
        (folder / "namespace").write_text(pods.namespace)
        shutil.copy(registry_cluster.ca_file, folder / "ca.crt")
        monkeypatch.setenv("KUBE_SERVICEACCOUNT_DIR", str(folder))
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", registry_cluster.host)
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(registry_cluster.port))
        monkeypatch.setenv("POD_NAME", "user-1")
        monkeypatch.delenv("POD_NAMESPACE", raising=False)
        pods.create("user-1", labels={"app": "user-srv"})

    return enter


def instance(**changes: Any) -> ServiceInstance:
    fields: dict[str, Any] = {
        "id": f"user-1.{SERVICE}",
        "name": SERVICE,
        "version": "v1.0.0",
        "metadata": {"region": "sh", "zone": "sh001"},
        "endpoints": ("http://127.0.9.1:8080", "grpc://127.0.9.1:40123"),
    }
    fields.update(changes)
    return ServiceInstance(**fields)


async def test_registration_is_visible_on_the_pod_and_deregistration_removes_it(
    pods: Any, in_pod: Any
) -> None:
    in_pod("user-srv", ["get", "patch"])
    assert own_pod() == (pods.namespace, "user-1")  # the namespace file is read
    api = kube_client(KubernetesConfig())  # in-cluster: token, CA and service host
    registrar, _ = registry_from_config(RegistryConfig(type="k8s"), api)
    try:
        await registrar.register(instance())
        pod = pods.read("user-1")
        assert pod.metadata.labels == {
            "app": "user-srv",
            "gomicro-service-id": f"user-1.{SERVICE}",
            "gomicro-service-app": SERVICE,
            "gomicro-service-version": "v1.0.0",
        }
        annotations = pod.metadata.annotations
        assert annotations["gomicro-service-protocols"] == '{"40123": "grpc", "8080": "http"}'
        assert annotations["gomicro-service-metadata"] == '{"region": "sh", "zone": "sh001"}'
        await registrar.deregister(instance())
        pod = pods.read("user-1")
        assert pod.metadata.labels == {"app": "user-srv"}  # removed, not blanked
        assert not any(k.startswith("gomicro-") for k in pod.metadata.annotations or {})
    finally:
        api.close()  # type: ignore[no-untyped-call]


async def test_bad_label_values_fail_at_start_naming_them(pods: Any, in_pod: Any) -> None:
    in_pod("user-srv", ["get", "patch"])
    api = kube_client(KubernetesConfig())
    registrar = PodRegistrar(api)
    try:
        with pytest.raises(LabelValueError, match=r"gomicro-service-version='v1 beta'"):
            await registrar.register(instance(version="v1 beta"))
        with pytest.raises(LabelValueError, match="70 characters, at most 63"):
            await registrar.register(instance(id="x" * 70))
        assert "gomicro-service-app" not in (pods.read("user-1").metadata.labels or {})
    finally:
        api.close()  # type: ignore[no-untyped-call]


async def test_a_service_account_without_patch_rights_is_refused(pods: Any, in_pod: Any) -> None:
    in_pod("reader", ["get"])
    api = kube_client(KubernetesConfig())
    try:
        with pytest.raises(ApiException) as raised:
            await PodRegistrar(api).register(instance())
        assert raised.value.status == 403
    finally:
        api.close()  # type: ignore[no-untyped-call]
