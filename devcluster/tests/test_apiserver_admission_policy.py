"""The project's admission policy (.k8s/02-admission-policy.yaml, applied as is): a
service's account may change only the gomicro-service-* labels and annotations of the Pod
its token is bound to; the admin user is not affected.

The module has its own API server: the policy is cluster-wide and the go-micro namespace
it names is the project's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes.client
import pytest
import yaml
from kubernetes.client import ApiException

from devcluster.testing import RunningDevCluster, body, running_devcluster
from micro.registry.base import ServiceInstance
from micro.registry.pod_registrar import PodRegistrar

POLICY_FILE = pathlib.Path(__file__).resolve().parents[2] / ".k8s" / "02-admission-policy.yaml"
NAMESPACE = "go-micro"
POLICY = "gomicro-service-own-pod"
RBAC = "rbac.authorization.k8s.io"


def apply_policy_file(api: kubernetes.client.ApiClient) -> None:
    admission: Any = kubernetes.client.AdmissionregistrationV1Api(api)
    for document in yaml.safe_load_all(POLICY_FILE.read_text()):
        if document["kind"] == "ValidatingAdmissionPolicy":
            admission.create_validating_admission_policy(body(document))
        else:
            admission.create_validating_admission_policy_binding(body(document))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDevCluster]:
    with running_devcluster(tmp_path_factory.mktemp("admission-policy")) as running:
        with running.api_client() as api:
            core: Any = kubernetes.client.CoreV1Api(api)
            core.create_namespace(body({"metadata": {"name": NAMESPACE}}))
            rbac: Any = kubernetes.client.RbacAuthorizationV1Api(api)
            # Wider than the services' Roles, so that the policy alone decides.
            rbac.create_namespaced_role(
                NAMESPACE,
                body(
                    {
                        "metadata": {"name": "pods"},
                        "rules": [
                            {
                                "apiGroups": [""],
                                "resources": ["pods", "pods/status"],
                                "verbs": ["get", "patch", "update", "delete"],
                            }
                        ],
                    }
                ),
            )
            rbac.create_namespaced_role_binding(
                NAMESPACE,
                body(
                    {
                        "metadata": {"name": "pods"},
                        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "pods"},
                        "subjects": [{"kind": "Group", "name": "system:serviceaccounts"}],
                    }
                ),
            )
            for account in ("admin-srv", "token-srv", "other"):
                core.create_namespaced_service_account(
                    NAMESPACE, body({"metadata": {"name": account}})
                )
            apply_policy_file(api)
        yield running


@pytest.fixture
def admin(cluster: RunningDevCluster) -> Iterator[Any]:
    with cluster.api_client() as api:
        yield kubernetes.client.CoreV1Api(api)


@pytest.fixture
def pods(admin: Any) -> Iterator[Callable[[str, str], Any]]:
    """Create a Pod run by a service account; removed after the test."""
    created: list[str] = []

    def create(name: str, account: str) -> Any:
        pod = admin.create_namespaced_pod(
            NAMESPACE,
            body(
                {
                    "metadata": {
                        "name": name,
                        "labels": {"app": account, "gomicro-service-app": "old"},
                        "annotations": {"note": "kept", "gomicro-service-protocols": "{}"},
                    },
                    "spec": {
                        "serviceAccountName": account,
                        "containers": [{"name": "main", "image": "srv:1"}],
                    },
                }
            ),
        )
        created.append(name)
        return pod

    yield create
    for name in created:
        try:
            admin.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
        except ApiException as error:
            if error.status != 404:
                raise


def bound_token(admin: Any, account: str, pod: str | None) -> str:
    spec: dict[str, Any] = {}
    if pod is not None:
        spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1", "name": pod}
    answer = admin.create_namespaced_service_account_token(account, NAMESPACE, body({"spec": spec}))
    token: str = answer.status.token
    return token


@pytest.fixture
def as_account(cluster: RunningDevCluster, admin: Any) -> Iterator[Callable[..., Any]]:
    """A CoreV1Api with a service account's token bound to a Pod (or to none)."""
    with contextlib.ExitStack() as clients:

        def open_as(account: str, pod: str | None) -> Any:
            client = clients.enter_context(cluster.api_client(bound_token(admin, account, pod)))
            return kubernetes.client.CoreV1Api(client)

        yield open_as


def refused(call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ApiException) as raised:
        call(*args, **kwargs)
    assert raised.value.status == 403, raised.value.body
    status: dict[str, Any] = json.loads(str(raised.value.body))
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "Forbidden", 403)
    return status


def patch_metadata(api: Any, name: str, metadata: dict[str, Any]) -> Any:
    return api.patch_namespaced_pod(name, NAMESPACE, body({"metadata": metadata}))


def test_a_service_changes_its_own_registry_labels_and_annotations(
    pods: Callable[[str, str], Any], as_account: Callable[..., Any]
) -> None:
    pods("admin-srv-1", "admin-srv")
    api = as_account("admin-srv", "admin-srv-1")
    patched = patch_metadata(
        api,
        "admin-srv-1",
        {
            "labels": {"gomicro-service-app": "go-micro.admin-srv", "gomicro-service-id": "a1"},
            "annotations": {"gomicro-service-protocols": '{"9090": "grpc"}'},
        },
    )
    assert patched.metadata.labels["gomicro-service-id"] == "a1"
    assert patched.metadata.annotations["gomicro-service-protocols"] == '{"9090": "grpc"}'
    removed = patch_metadata(api, "admin-srv-1", {"labels": {"gomicro-service-id": None}})
    assert "gomicro-service-id" not in removed.metadata.labels
    assert removed.metadata.labels["app"] == "admin-srv"


def test_another_pods_labels_are_forbidden_with_kubes_message(
    pods: Callable[[str, str], Any], as_account: Callable[..., Any], admin: Any
) -> None:
    pods("admin-srv-1", "admin-srv")
    pods("token-srv-1", "token-srv")
    api = as_account("admin-srv", "admin-srv-1")
    status = refused(
        patch_metadata, api, "token-srv-1", {"labels": {"gomicro-service-app": "forged"}}
    )
    inner = (
        f"ValidatingAdmissionPolicy '{POLICY}' with binding '{POLICY}' denied request: "
        f"system:serviceaccount:{NAMESPACE}:admin-srv may change only its own Pod "
        "admin-srv-1, not token-srv-1"
    )
    assert status["message"] == f'pods "token-srv-1" is forbidden: {inner}'
    assert status["details"] == {
        "name": "token-srv-1",
        "kind": "pods",
        "causes": [{"message": inner}],
    }
    labels = admin.read_namespaced_pod("token-srv-1", NAMESPACE).metadata.labels
    assert labels["gomicro-service-app"] == "old"
    refused(api.delete_namespaced_pod, "token-srv-1", NAMESPACE)


@pytest.mark.parametrize(
    "metadata",
    [
        {"labels": {"app": "changed"}},
        {"labels": {"app": None}},
        {"annotations": {"note": "changed"}},
        {"annotations": {"other": "added"}},
        {"finalizers": ["example.com/keep"]},
        {"ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "x", "uid": "0-0-0-0-0"}]},
    ],
    ids=["label", "label-removed", "annotation", "annotation-added", "finalizer", "owner"],
)
def test_its_own_pods_other_metadata_is_forbidden(
    pods: Callable[[str, str], Any], as_account: Callable[..., Any], metadata: dict[str, Any]
) -> None:
    pods("admin-srv-1", "admin-srv")
    api = as_account("admin-srv", "admin-srv-1")
    status = refused(patch_metadata, api, "admin-srv-1", metadata)
    assert status["message"].endswith(
        "denied request: a service may change only the gomicro-service-* labels and "
        "annotations of its Pod"
    )


def test_its_own_pods_image_and_spec_are_forbidden(
    pods: Callable[[str, str], Any], as_account: Callable[..., Any], admin: Any
) -> None:
    pods("admin-srv-1", "admin-srv")
    api = as_account("admin-srv", "admin-srv-1")
    image = {"spec": {"containers": [{"name": "main", "image": "evil:1"}]}}
    refused(api.patch_namespaced_pod, "admin-srv-1", NAMESPACE, body(image))
    refused(
        api.patch_namespaced_pod,
        "admin-srv-1",
        NAMESPACE,
        body({"spec": {"activeDeadlineSeconds": 5}}),
    )
    pod = api.read_namespaced_pod("admin-srv-1", NAMESPACE)
    pod.spec.containers[0].image = "evil:2"
    refused(api.replace_namespaced_pod, "admin-srv-1", NAMESPACE, pod)
    assert admin.read_namespaced_pod("admin-srv-1", NAMESPACE).spec.containers[0].image == ("srv:1")


def test_a_token_bound_to_no_pod_may_change_no_pod(
    pods: Callable[[str, str], Any], as_account: Callable[..., Any]
) -> None:
    pods("admin-srv-1", "admin-srv")
    api = as_account("admin-srv", None)
    status = refused(patch_metadata, api, "admin-srv-1", {"labels": {"gomicro-service-app": "x"}})
    assert status["message"].endswith(
        f"system:serviceaccount:{NAMESPACE}:admin-srv has a token bound to no Pod, "
        "so it may change no Pod"
    )


def test_admins_and_other_accounts_are_not_affected(
    pods: Callable[[str, str], Any], as_account: Callable[..., Any], admin: Any
) -> None:
    pods("admin-srv-1", "admin-srv")
    pods("token-srv-1", "token-srv")
    changed = admin.patch_namespaced_pod(
        "admin-srv-1",
        NAMESPACE,
        body({"metadata": {"labels": {"app": "x"}}, "spec": {"activeDeadlineSeconds": 60}}),
    )
    assert (changed.metadata.labels["app"], changed.spec.active_deadline_seconds) == ("x", 60)
    # An account that is not one of the services' (a controller's, say).
    controller = as_account("other", None)
    moved = patch_metadata(controller, "token-srv-1", {"labels": {"app": "moved"}})
    assert moved.metadata.labels["app"] == "moved"


def test_pod_status_is_not_in_scope(
    pods: Callable[[str, str], Any], as_account: Callable[..., Any]
) -> None:
    pods("token-srv-1", "token-srv")
    api = as_account("token-srv", None)
    patched = api.patch_namespaced_pod_status(
        "token-srv-1", NAMESPACE, body({"status": {"message": "written"}})
    )
    assert patched.status.message == "written"


def test_the_services_registrar_passes_the_policy(
    cluster: RunningDevCluster, pods: Callable[[str, str], Any], admin: Any
) -> None:
    """What the services really send (micro's PodRegistrar) is what the policy allows."""
    pods("user-srv-1", "admin-srv")
    instance = ServiceInstance(
        id="user-1.go-micro.user-srv",
        name="go-micro.user-srv",
        version="v1",
        endpoints=("grpc://10.0.0.1:9090",),
    )
    with cluster.api_client(bound_token(admin, "admin-srv", "user-srv-1")) as api:
        registrar = PodRegistrar(api, pod=lambda: (NAMESPACE, "user-srv-1"))
        asyncio.run(registrar.register(instance))
        labels = admin.read_namespaced_pod("user-srv-1", NAMESPACE).metadata.labels
        assert labels["gomicro-service-app"] == "go-micro.user-srv"
        asyncio.run(registrar.deregister(instance))
    pod = admin.read_namespaced_pod("user-srv-1", NAMESPACE)
    assert "gomicro-service-app" not in pod.metadata.labels
    assert "gomicro-service-protocols" not in pod.metadata.annotations
