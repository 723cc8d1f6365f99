"""Authentication by bearer token and RBAC authorization of every request."""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import kubernetes.client
import pytest
from kubernetes.client import ApiException

from devcluster.testing import RunningDevCluster, body

RBAC = "rbac.authorization.k8s.io"


@pytest.fixture
def robot(core: Any, devcluster: RunningDevCluster, namespace: str) -> str:
    """A ServiceAccount's token, obtained the way a pod gets one (TokenRequest)."""
    core.create_namespaced_service_account(namespace, body({"metadata": {"name": "robot"}}))
    return devcluster.service_account_token(namespace, "robot")


@pytest.fixture
def as_robot(devcluster: RunningDevCluster, robot: str) -> Iterator[Any]:
    with devcluster.api_client(robot) as client:
        yield kubernetes.client.CoreV1Api(client)


def _grant(
    api: kubernetes.client.ApiClient,
    namespace: str,
    rules: list[dict[str, object]],
    subject: dict[str, str] | None = None,
    name: str = "r",
) -> None:
    rbac: Any = kubernetes.client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(namespace, body({"metadata": {"name": name}, "rules": rules}))
    rbac.create_namespaced_role_binding(
        namespace,
        body(
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
                "subjects": [
                    subject or {"kind": "ServiceAccount", "name": "robot", "namespace": namespace}
                ],
            }
        ),
    )


def _forbidden(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(ApiException) as raised:
        call(*args, **kwargs)  # type: ignore[operator]
    assert raised.value.status == 403
    status = json.loads(str(raised.value.body))
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "Forbidden", 403)
    message: str = status["message"]
    return message


def test_token_request_issues_a_service_account_token(
    core: Any, namespace: str, robot: str
) -> None:
    payload = json.loads(base64.urlsafe_b64decode(robot.split(".")[1] + "=="))
    assert payload["sub"] == f"system:serviceaccount:{namespace}:robot"
    answer = core.create_namespaced_service_account_token(
        "robot", namespace, body({"spec": {"audiences": ["api"], "expirationSeconds": 3600}})
    )
    assert answer.status.token
    assert answer.status.expiration_timestamp is not None
    with pytest.raises(ApiException) as short:
        core.create_namespaced_service_account_token(
            "robot", namespace, body({"spec": {"expirationSeconds": 60}})
        )
    assert short.value.status == 422
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_service_account_token("nobody", namespace, body({"spec": {}}))
    assert missing.value.status == 404


def test_who_am_i(devcluster: RunningDevCluster, robot: str, namespace: str) -> None:
    with devcluster.api_client(robot) as client:
        review: Any = kubernetes.client.AuthenticationV1Api(client).create_self_subject_review(
            body({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        )
    info = review.status.user_info
    assert info.username == f"system:serviceaccount:{namespace}:robot"
    assert set(info.groups) == {
        "system:serviceaccounts",
        f"system:serviceaccounts:{namespace}",
        "system:authenticated",
    }


def test_a_service_account_starts_with_no_rights(as_robot: Any, namespace: str) -> None:
    message = _forbidden(as_robot.list_namespaced_pod, namespace)
    assert message == (
        f'pods is forbidden: User "system:serviceaccount:{namespace}:robot" cannot list '
        f'resource "pods" in API group "" in the namespace "{namespace}"'
    )
    message = _forbidden(as_robot.patch_namespaced_pod, "x", namespace, {"metadata": {}})
    assert message == (
        f'pods "x" is forbidden: User "system:serviceaccount:{namespace}:robot" cannot patch '
        f'resource "pods" in API group "" in the namespace "{namespace}"'
    )
    message = _forbidden(as_robot.list_namespace)
    assert message.endswith(
        'cannot list resource "namespaces" in API group "" at the cluster scope'
    )


def test_a_role_grants_exactly_its_rules(
    api: kubernetes.client.ApiClient, as_robot: Any, namespace: str
) -> None:
    _grant(
        api,
        namespace,
        [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]},
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "verbs": ["get"],
                "resourceNames": ["allowed"],
            },
        ],
    )
    core: Any = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_pod(
        namespace,
        body({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "m", "image": "i:1"}]}}),
    )
    core.create_namespaced_config_map(namespace, body({"metadata": {"name": "allowed"}}))
    core.create_namespaced_config_map(namespace, body({"metadata": {"name": "secret-ish"}}))

    assert [p.metadata.name for p in as_robot.list_namespaced_pod(namespace).items] == ["p"]
    assert (
        as_robot.patch_namespaced_pod_status(
            "p", namespace, {"status": {"phase": "Running"}}
        ).status.phase
        == "Running"
    )
    message = _forbidden(as_robot.patch_namespaced_pod, "p", namespace, {"metadata": {}})
    assert 'cannot patch resource "pods"' in message
    message = _forbidden(as_robot.read_namespaced_pod_log, "p", namespace)
    assert 'cannot get resource "pods/log" in API group ""' in message
    assert as_robot.read_namespaced_config_map("allowed", namespace).metadata.name == "allowed"
    _forbidden(as_robot.read_namespaced_config_map, "secret-ish", namespace)
    _forbidden(as_robot.list_namespaced_config_map, namespace)
    # The Role is namespaced: another namespace stays closed.
    _forbidden(as_robot.list_namespaced_pod, "default")


def test_cluster_roles_groups_and_users(
    api: kubernetes.client.ApiClient, devcluster: RunningDevCluster, robot: str, namespace: str
) -> None:
    rbac: Any = kubernetes.client.RbacAuthorizationV1Api(api)
    name = f"{namespace}-reader"
    rbac.create_cluster_role(
        body(
            {
                "metadata": {"name": name},
                "rules": [{"apiGroups": ["apps"], "resources": ["*"], "verbs": ["list"]}],
            }
        )
    )
    rbac.create_cluster_role_binding(
        body(
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": name},
                "subjects": [{"kind": "Group", "name": f"system:serviceaccounts:{namespace}"}],
            }
        )
    )
    with devcluster.api_client(robot) as client:
        apps: Any = kubernetes.client.AppsV1Api(client)
        assert apps.list_deployment_for_all_namespaces().items is not None
        message = _forbidden(apps.read_namespaced_deployment, "x", namespace)
        assert message.startswith('deployments.apps "x" is forbidden')
        assert 'in API group "apps"' in message
    # A User subject, checked through impersonation.
    _grant(
        api,
        namespace,
        [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
        {"kind": "User", "name": "alice", "apiGroup": RBAC},
        name="alice",
    )
    context = ssl.create_default_context(cafile=str(devcluster.ca_file))
    with httpx.Client(base_url=devcluster.url, verify=context) as http:
        admin = {"Authorization": f"Bearer {devcluster.admin_token}"}
        as_alice = {**admin, "Impersonate-User": "alice"}
        assert http.get(f"/api/v1/namespaces/{namespace}/pods", headers=as_alice).status_code == 200
        assert http.get("/api/v1/namespaces/default/pods", headers=as_alice).status_code == 403
        robot_headers = {"Authorization": f"Bearer {robot}", "Impersonate-User": "alice"}
        refused = http.get("/api/v1/pods", headers=robot_headers)
        assert refused.status_code == 403
        assert 'cannot impersonate resource "users"' in refused.json()["message"]


def test_bad_tokens_are_401_and_no_token_is_anonymous(
    devcluster: RunningDevCluster, robot: str, namespace: str
) -> None:
    context = ssl.create_default_context(cafile=str(devcluster.ca_file))
    with httpx.Client(base_url=devcluster.url, verify=context) as http:
        for token in ("nonsense", robot[:-4] + "AAAA", devcluster.admin_token + "x"):
            answer = http.get("/api/v1/pods", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 401
            assert answer.json() == {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "Unauthorized",
                "reason": "Unauthorized",
                "code": 401,
            }
        anonymous = http.get("/api/v1/pods")
        assert anonymous.status_code == 403
        assert 'User "system:anonymous"' in anonymous.json()["message"]
        assert http.get("/apis").status_code == 403


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("tökén".encode(), id="utf-8"),
        pytest.param(b"\xe9t\xe9", id="latin-1"),
        pytest.param(b"\xff" * 43, id="admin-token-length"),
    ],
)
def test_a_non_ascii_token_is_401(
    devcluster: RunningDevCluster, token: bytes, server_log_since: Callable[[], str]
) -> None:
    context = ssl.create_default_context(cafile=str(devcluster.ca_file))
    with httpx.Client(base_url=devcluster.url, verify=context) as http:
        answer = http.get("/api/v1/pods", headers={b"Authorization": b"Bearer " + token})

    assert answer.status_code == 401
    assert (answer.json()["reason"], answer.json()["message"]) == ("Unauthorized", "Unauthorized")
    assert " ERROR " not in server_log_since()
    assert "Traceback" not in server_log_since()


def test_a_token_dies_with_its_service_account(
    core: Any, devcluster: RunningDevCluster, robot: str, namespace: str
) -> None:
    core.delete_namespaced_service_account("robot", namespace)
    core.create_namespaced_service_account(namespace, body({"metadata": {"name": "robot"}}))
    with devcluster.api_client(robot) as client, pytest.raises(ApiException) as raised:
        kubernetes.client.CoreV1Api(client).list_namespaced_pod(namespace)
    assert raised.value.status == 401


def test_service_accounts_may_discover(devcluster: RunningDevCluster, robot: str) -> None:
    with devcluster.api_client(robot) as client:
        assert kubernetes.client.CoreApi(client).get_api_versions().versions == ["v1"]


def test_self_subject_access_review(
    api: kubernetes.client.ApiClient, devcluster: RunningDevCluster, robot: str, namespace: str
) -> None:
    _grant(api, namespace, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["watch"]}])

    def can(verb: str, resource: str) -> bool:
        with devcluster.api_client(robot) as client:
            review: Any = kubernetes.client.AuthorizationV1Api(
                client
            ).create_self_subject_access_review(
                body(
                    {
                        "spec": {
                            "resourceAttributes": {
                                "namespace": namespace,
                                "verb": verb,
                                "resource": resource,
                            }
                        }
                    }
                )
            )
        allowed: bool = review.status.allowed
        return allowed

    assert can("watch", "configmaps")
    assert not can("delete", "configmaps")
    assert not can("watch", "secrets")


def test_resource_names_admit_a_list_or_watch_of_that_name(
    api: kubernetes.client.ApiClient, http: httpx.Client, robot: str, namespace: str
) -> None:
    _grant(
        api,
        namespace,
        [
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "verbs": ["get", "list", "watch"],
                "resourceNames": ["mine"],
            }
        ],
    )
    core: Any = kubernetes.client.CoreV1Api(api)
    for name in ("mine", "theirs"):
        core.create_namespaced_secret(namespace, body({"metadata": {"name": name}}))
    path = f"/api/v1/namespaces/{namespace}/secrets"
    as_robot = {"Authorization": f"Bearer {robot}"}

    def get(**params: str) -> httpx.Response:
        return http.get(path, params=params, headers=as_robot)

    listed = get(fieldSelector="metadata.name=mine")
    assert listed.status_code == 200
    assert [s["metadata"]["name"] for s in listed.json()["items"]] == ["mine"]
    watched = get(fieldSelector="metadata.name=mine", watch="1", timeoutSeconds="1")
    assert watched.status_code == 200
    assert '"name":"mine"' in watched.text
    assert get(fieldSelector="metadata.name=theirs").status_code == 403
    assert get(fieldSelector="metadata.name!=theirs").status_code == 403
    assert get().status_code == 403


def test_tokens_for_other_audiences_or_gone_pods_do_not_authenticate(
    core: Any, devcluster: RunningDevCluster, robot: str, namespace: str
) -> None:
    def status_with(token: str) -> int:
        with devcluster.api_client(token) as client:
            review = kubernetes.client.AuthenticationV1Api(client)
            try:
                review.create_self_subject_review(body({"kind": "SelfSubjectReview"}))
            except ApiException as error:
                return int(error.status)
            return 201

    elsewhere = core.create_namespaced_service_account_token(
        "robot", namespace, body({"spec": {"audiences": ["vault"]}})
    )
    assert status_with(elsewhere.status.token) == 401
    pod = core.create_namespaced_pod(
        namespace,
        body({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "m", "image": "i"}]}}),
    )
    bound = core.create_namespaced_service_account_token(
        "robot",
        namespace,
        body({"spec": {"boundObjectRef": {"kind": "Pod", "name": "p", "apiVersion": "v1"}}}),
    )
    assert bound.spec.bound_object_ref.uid == pod.metadata.uid
    assert status_with(bound.status.token) == 201
    core.delete_namespaced_pod("p", namespace)
    assert status_with(bound.status.token) == 401
    assert status_with(robot) == 201


def test_system_namespaces_cannot_be_deleted(core: Any) -> None:
    with pytest.raises(ApiException) as raised:
        core.delete_namespace("kube-system")
    assert raised.value.status == 403
    assert "this namespace may not be deleted" in str(raised.value.body)
