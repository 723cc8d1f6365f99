"""Create, get, list, update and delete with kube-apiserver's semantics, for every kind."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import kubernetes.client
import pytest
from kubernetes.client import ApiException

from devcluster.apiserver.resources import RESOURCES, VIRTUAL, ResourceType
from devcluster.testing import body

_POD_SPEC = {"containers": [{"name": "main", "image": "busybox:1.36"}]}
_SELECTOR = {"matchLabels": {"app": "x"}}
_TEMPLATE = {"metadata": {"labels": {"app": "x"}}, "spec": _POD_SPEC}
_RULES = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
# Selects nothing that is ever written: the sample policy checks no other test's writes.
_ADMISSION_RULE = {
    "apiGroups": ["example.com"],
    "apiVersions": ["v1"],
    "operations": ["CREATE"],
    "resources": ["samples"],
}
_ROLE_REF = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}

# A minimal valid object of every stored kind.
SAMPLES: dict[str, dict[str, Any]] = {
    "namespaces": {},
    "nodes": {"spec": {}},
    "pods": {"spec": _POD_SPEC},
    "configmaps": {"data": {"k": "v"}},
    "secrets": {"stringData": {"k": "v"}},
    "services": {"spec": {"ports": [{"port": 80}]}},
    "serviceaccounts": {},
    "endpoints": {"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]},
    "events": {
        "involvedObject": {"kind": "Pod", "name": "p"},
        "reason": "Test",
        "message": "m",
        "type": "Normal",
    },
    "deployments": {"spec": {"selector": _SELECTOR, "template": _TEMPLATE}},
    "replicasets": {"spec": {"selector": _SELECTOR, "template": _TEMPLATE}},
    "statefulsets": {"spec": {"selector": _SELECTOR, "template": _TEMPLATE, "serviceName": "x"}},
    "endpointslices": {"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}]},
    "roles": {"rules": _RULES},
    "rolebindings": {"roleRef": _ROLE_REF, "subjects": []},
    "clusterroles": {"rules": _RULES},
    "clusterrolebindings": {"roleRef": _ROLE_REF, "subjects": []},
    "networkpolicies": {"spec": {"podSelector": {}}},
    "poddisruptionbudgets": {"spec": {"minAvailable": 1, "selector": _SELECTOR}},
    "validatingadmissionpolicies": {
        "spec": {
            "matchConstraints": {"resourceRules": [_ADMISSION_RULE]},
            "validations": [{"expression": "true"}],
        }
    },
    "validatingadmissionpolicybindings": {
        "spec": {"policyName": "none", "validationActions": ["Deny"]}
    },
}
STORED = [r for r in RESOURCES if r.plural not in VIRTUAL]


def _path(resource: ResourceType, namespace: str, name: str = "") -> str:
    base = f"/apis/{resource.group}/{resource.version}" if resource.group else "/api/v1"
    scope = f"/namespaces/{namespace}" if resource.namespaced else ""
    return f"{base}{scope}/{resource.plural}" + (f"/{name}" if name else "")


def test_every_stored_kind_has_a_sample() -> None:
    assert {r.plural for r in STORED} == set(SAMPLES)


@pytest.mark.parametrize("resource", STORED, ids=lambda r: r.plural)
def test_generic_lifecycle(http: httpx.Client, namespace: str, resource: ResourceType) -> None:
    name = f"{namespace}-{resource.singular}"
    obj = {
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {"name": name, "labels": {"sample": "yes"}},
        **SAMPLES[resource.plural],
    }
    created = http.post(_path(resource, namespace), json=obj)
    assert created.status_code == 201, created.text
    stored = created.json()
    metadata = stored["metadata"]
    assert re.fullmatch(r"[0-9a-f-]{36}", metadata["uid"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", metadata["creationTimestamp"])
    assert int(metadata["resourceVersion"]) > 0
    assert (stored["kind"], stored["apiVersion"]) == (resource.kind, resource.api_version)
    if resource.namespaced:
        assert metadata["namespace"] == namespace

    fetched = http.get(_path(resource, namespace, name))
    assert fetched.status_code == 200
    assert fetched.json() == stored

    listed = http.get(_path(resource, namespace), params={"labelSelector": "sample=yes"})
    assert listed.json()["kind"] == f"{resource.kind}List"
    assert int(listed.json()["metadata"]["resourceVersion"]) >= int(metadata["resourceVersion"])
    assert name in {item["metadata"]["name"] for item in listed.json()["items"]}

    again = http.post(_path(resource, namespace), json=obj)
    assert again.status_code == 409
    assert again.json()["reason"] == "AlreadyExists"

    deleted = http.delete(_path(resource, namespace, name))
    assert deleted.status_code == 200, deleted.text
    if resource.plural != "namespaces":  # a namespace terminates, then goes
        assert http.get(_path(resource, namespace, name)).status_code == 404


def test_not_found_is_the_real_status(core: Any, namespace: str) -> None:
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_config_map("missing", namespace)
    assert raised.value.status == 404
    assert '"reason":"NotFound"' in str(raised.value.body)
    assert 'configmaps \\"missing\\" not found' in str(raised.value.body)


def test_group_kinds_are_qualified_in_messages(http: httpx.Client, namespace: str) -> None:
    answer = http.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/none")
    assert answer.status_code == 404
    assert answer.json()["message"] == 'deployments.apps "none" not found'
    assert answer.json()["details"] == {"name": "none", "group": "apps", "kind": "deployments"}


def test_objects_in_a_missing_namespace_are_refused(core: Any) -> None:
    with pytest.raises(ApiException) as raised:
        core.create_namespaced_config_map("no-such-ns", body({"metadata": {"name": "a"}}))
    assert raised.value.status == 404
    assert 'namespaces \\"no-such-ns\\" not found' in str(raised.value.body)
    with pytest.raises(ApiException) as listed:
        core.list_namespaced_config_map("no-such-ns")
    assert listed.value.status == 404


def test_generate_name_and_generation(api: kubernetes.client.ApiClient, namespace: str) -> None:
    apps: Any = kubernetes.client.AppsV1Api(api)
    created = apps.create_namespaced_deployment(
        namespace,
        body(
            {
                "metadata": {"generateName": "web-"},
                "spec": {"selector": _SELECTOR, "template": _TEMPLATE},
            }
        ),
    )
    assert re.fullmatch(r"web-[a-z0-9]{5}", created.metadata.name)
    assert created.metadata.generation == 1
    assert created.spec.replicas == 1
    scaled = apps.patch_namespaced_deployment(
        created.metadata.name, namespace, {"spec": {"replicas": 3}}
    )
    assert scaled.metadata.generation == 2
    labelled = apps.patch_namespaced_deployment(
        created.metadata.name, namespace, {"metadata": {"labels": {"a": "b"}}}
    )
    assert labelled.metadata.generation == 2
    status = apps.patch_namespaced_deployment_status(
        created.metadata.name, namespace, {"status": {"replicas": 3}}
    )
    assert status.metadata.generation == 2
    assert status.status.replicas == 3


def test_update_needs_the_current_resource_version(core: Any, namespace: str) -> None:
    created = core.create_namespaced_config_map(
        namespace, body({"metadata": {"name": "cm"}, "data": {"a": "1"}})
    )
    created.data = {"a": "2"}
    updated = core.replace_namespaced_config_map("cm", namespace, created)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    created.data = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as raised:
        core.replace_namespaced_config_map("cm", namespace, created)
    assert raised.value.status == 409
    assert '"reason":"Conflict"' in str(raised.value.body)
    assert "the object has been modified" in str(raised.value.body)
    created.metadata.resource_version = None  # no precondition: an unconditional update
    assert core.replace_namespaced_config_map("cm", namespace, created).data == {"a": "3"}


def test_a_no_op_write_keeps_the_resource_version(core: Any, namespace: str) -> None:
    created = core.create_namespaced_config_map(
        namespace, body({"metadata": {"name": "same"}, "data": {"a": "1"}})
    )
    patched = core.patch_namespaced_config_map("same", namespace, {"data": {"a": "1"}})
    assert patched.metadata.resource_version == created.metadata.resource_version


def test_update_with_another_name_is_a_bad_request(http: httpx.Client, namespace: str) -> None:
    http.post(f"/api/v1/namespaces/{namespace}/configmaps", json={"metadata": {"name": "a"}})
    answer = http.put(
        f"/api/v1/namespaces/{namespace}/configmaps/a", json={"metadata": {"name": "b"}}
    )
    assert answer.status_code == 400
    assert answer.json()["message"] == (
        "the name of the object (b) does not match the name on the URL (a)"
    )


@pytest.mark.parametrize("content_type", ["application/json", "application/yaml"])
def test_a_body_nested_too_deep_is_a_bad_request(
    http: httpx.Client, namespace: str, content_type: str, server_log_since: Callable[[], str]
) -> None:
    deep = b'{"metadata": {"name": "deep"}, "data": ' + b"[" * 12_000
    answer = http.post(
        f"/api/v1/namespaces/{namespace}/configmaps",
        content=deep,
        headers={"Content-Type": content_type},
    )
    assert answer.status_code == 400
    assert answer.json()["message"] == "the request body is nested too deeply"
    assert " ERROR " not in server_log_since()
    assert "Traceback" not in server_log_since()


def test_invalid_objects_are_422(http: httpx.Client, namespace: str) -> None:
    bad_name = http.post(
        f"/api/v1/namespaces/{namespace}/configmaps", json={"metadata": {"name": "Bad_Name"}}
    )
    assert bad_name.status_code == 422
    assert bad_name.json()["reason"] == "Invalid"
    assert bad_name.json()["message"].startswith(
        'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": '
        "a lowercase RFC 1123 subdomain"
    )
    no_containers = http.post(
        f"/api/v1/namespaces/{namespace}/pods", json={"metadata": {"name": "p"}, "spec": {}}
    )
    assert no_containers.status_code == 422
    assert no_containers.json()["message"] == 'Pod "p" is invalid: spec.containers: Required value'
    assert no_containers.json()["details"]["causes"][0]["field"] == "spec.containers"
    bad_label = http.post(
        f"/api/v1/namespaces/{namespace}/configmaps",
        json={"metadata": {"name": "c", "labels": {"a": "not valid!"}}},
    )
    assert bad_label.status_code == 422
    unnamed = http.post(f"/api/v1/namespaces/{namespace}/configmaps", json={"metadata": {}})
    assert unnamed.status_code == 422
    assert "name or generateName is required" in unnamed.json()["message"]
    wrong_kind = http.post(
        f"/api/v1/namespaces/{namespace}/configmaps",
        json={"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "d"}},
    )
    assert wrong_kind.status_code == 400


def test_pod_spec_is_immutable_except_images(core: Any, namespace: str) -> None:
    core.create_namespaced_pod(namespace, body({"metadata": {"name": "p"}, "spec": _POD_SPEC}))
    image = {"spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}}
    assert core.patch_namespaced_pod("p", namespace, image).spec.containers[0].image == (
        "busybox:1.37"
    )
    with pytest.raises(ApiException) as raised:
        core.patch_namespaced_pod("p", namespace, {"spec": {"restartPolicy": "Never"}})
    assert raised.value.status == 422
    assert "pod updates may not change fields" in str(raised.value.body)


def test_status_subresource_writes_status_only(core: Any, namespace: str) -> None:
    pod = core.create_namespaced_pod(
        namespace, body({"metadata": {"name": "p"}, "spec": _POD_SPEC})
    )
    assert pod.status.phase == "Pending"
    running = core.patch_namespaced_pod_status(
        "p",
        namespace,
        {
            "metadata": {"labels": {"ignored": "yes"}},
            "status": {"phase": "Running", "podIP": "10.1.0.5"},
        },
    )
    assert running.status.phase == "Running"
    assert not (running.metadata.labels or {}).get("ignored")
    # The main resource ignores status.
    relabelled = core.patch_namespaced_pod(
        "p", namespace, {"metadata": {"labels": {"a": "b"}}, "status": {"phase": "Failed"}}
    )
    assert relabelled.status.phase == "Running"
    assert relabelled.metadata.labels == {"a": "b"}
    assert core.read_namespaced_pod_status("p", namespace).status.pod_ip == "10.1.0.5"


def test_unscheduled_pods_are_deleted_at_once(core: Any, namespace: str) -> None:
    core.create_namespaced_pod(namespace, body({"metadata": {"name": "p"}, "spec": _POD_SPEC}))
    deleted = core.delete_namespaced_pod("p", namespace)
    assert deleted.metadata.name == "p"
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_pod("p", namespace)
    assert raised.value.status == 404


def test_running_pods_terminate_gracefully(core: Any, namespace: str) -> None:
    spec = {**_POD_SPEC, "terminationGracePeriodSeconds": 20}
    core.create_namespaced_pod(namespace, body({"metadata": {"name": "p"}, "spec": spec}))
    core.create_namespaced_pod_binding(
        "p",
        namespace,
        body({"metadata": {"name": "p"}, "target": {"kind": "Node", "name": "node-1"}}),
        _preload_content=False,
    )
    assert core.read_namespaced_pod("p", namespace).spec.node_name == "node-1"
    terminating = core.delete_namespaced_pod("p", namespace)
    assert terminating.metadata.deletion_timestamp is not None
    assert terminating.metadata.deletion_grace_period_seconds == 20
    assert core.read_namespaced_pod("p", namespace).metadata.deletion_timestamp is not None
    shorter = core.delete_namespaced_pod("p", namespace, grace_period_seconds=5)
    assert shorter.metadata.deletion_grace_period_seconds == 5
    # What a kubelet does once the containers are gone.
    core.delete_namespaced_pod("p", namespace, grace_period_seconds=0)
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_pod("p", namespace)
    assert raised.value.status == 404


def test_binding_an_assigned_pod_is_a_conflict(http: httpx.Client, namespace: str) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    http.post(pods, json={"metadata": {"name": "p"}, "spec": _POD_SPEC})
    target = {"target": {"kind": "Node", "name": "n1"}}
    assert http.post(f"{pods}/p/binding", json=target).status_code == 201
    again = http.post(f"{pods}/p/binding", json=target)
    assert again.status_code == 409
    assert again.json()["message"] == 'pod p is already assigned to node "n1"'


def test_finalizers_hold_an_object_until_removed(core: Any, namespace: str) -> None:
    core.create_namespaced_config_map(
        namespace, body({"metadata": {"name": "held", "finalizers": ["example.com/cleanup"]}})
    )
    core.delete_namespaced_config_map("held", namespace)
    held = core.read_namespaced_config_map("held", namespace)
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.finalizers == ["example.com/cleanup"]
    core.patch_namespaced_config_map("held", namespace, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_config_map("held", namespace)
    assert raised.value.status == 404


def test_delete_preconditions(http: httpx.Client, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    http.post(path, json={"metadata": {"name": "a"}})
    answer = http.request("DELETE", f"{path}/a", json={"preconditions": {"uid": "not-the-uid"}})
    assert answer.status_code == 409
    assert answer.json()["message"].startswith("Precondition failed: UID in precondition")
    ok = http.delete(f"{path}/a")
    assert ok.json()["kind"] == "Status"
    assert ok.json()["status"] == "Success"
    assert ok.json()["details"]["name"] == "a"


def test_deleting_a_namespace_deletes_its_content(core: Any, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, body({"metadata": {"name": "a"}}))
    core.delete_namespace(namespace)
    with pytest.raises(ApiException) as raised:
        core.read_namespace(namespace)
    assert raised.value.status == 404
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("a", namespace)


def test_namespace_waits_for_terminating_pods(core: Any, namespace: str) -> None:
    core.create_namespaced_pod(
        namespace, body({"metadata": {"name": "p"}, "spec": {**_POD_SPEC, "nodeName": "n1"}})
    )
    core.delete_namespace(namespace)
    terminating = core.read_namespace(namespace)
    assert terminating.status.phase == "Terminating"
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_config_map(namespace, body({"metadata": {"name": "late"}}))
    assert refused.value.status == 403
    assert "because it is being terminated" in str(refused.value.body)
    core.delete_namespaced_pod("p", namespace, grace_period_seconds=0)
    with pytest.raises(ApiException) as raised:
        core.read_namespace(namespace)
    assert raised.value.status == 404


def test_new_namespaces_get_a_default_service_account(core: Any, namespace: str) -> None:
    assert core.read_namespaced_service_account("default", namespace).metadata.name == "default"
    assert core.read_namespace(namespace).status.phase == "Active"
    names = {n.metadata.name for n in core.list_namespace().items}
    assert {"default", "kube-system"} <= names


def test_services_get_cluster_ips_and_node_ports(core: Any, namespace: str) -> None:
    first = core.create_namespaced_service(
        namespace,
        body(
            {
                "metadata": {"name": "a"},
                "spec": {"type": "NodePort", "selector": {"app": "a"}, "ports": [{"port": 80}]},
            }
        ),
    )
    assert first.spec.cluster_ip.startswith("10.96.")
    assert first.spec.cluster_ips == [first.spec.cluster_ip]
    node_port = first.spec.ports[0].node_port
    # Automatic values come from above the static bands that fixed requests use.
    assert 30086 <= node_port <= 32767
    assert not first.spec.cluster_ip.startswith("10.96.0.")
    assert first.spec.ports[0].target_port == 80
    second = core.create_namespaced_service(
        namespace, body({"metadata": {"name": "b"}, "spec": {"ports": [{"port": 80}]}})
    )
    assert second.spec.cluster_ip != first.spec.cluster_ip
    with pytest.raises(ApiException) as raised:
        core.create_namespaced_service(
            namespace,
            body(
                {
                    "metadata": {"name": "c"},
                    "spec": {"type": "NodePort", "ports": [{"port": 81, "nodePort": node_port}]},
                }
            ),
        )
    assert raised.value.status == 422
    assert (
        f"spec.ports[0].nodePort: Invalid value: {node_port}: provided port is already allocated"
    ) in str(raised.value.body)
    # An update may omit what was allocated.
    replaced = core.replace_namespaced_service(
        "b", namespace, body({"metadata": {"name": "b"}, "spec": {"ports": [{"port": 8080}]}})
    )
    assert replaced.spec.cluster_ip == second.spec.cluster_ip


def test_secret_string_data_is_folded_into_data(core: Any, namespace: str) -> None:
    secret = core.create_namespaced_secret(
        namespace, body({"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}})
    )
    assert secret.type == "Opaque"
    assert secret.data == {"password": "aHVudGVyMg=="}
    assert secret.string_data is None


def test_dry_run_stores_nothing(http: httpx.Client, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    answer = http.post(path, params={"dryRun": "All"}, json={"metadata": {"name": "dry"}})
    assert answer.status_code == 201
    assert http.get(f"{path}/dry").status_code == 404


def test_cluster_wide_list_spans_namespaces(core: Any, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, body({"metadata": {"name": "wide"}}))
    everywhere = core.list_config_map_for_all_namespaces()
    assert (namespace, "wide") in {
        (c.metadata.namespace, c.metadata.name) for c in everywhere.items
    }


def test_immutable_configmaps_keep_their_data(core: Any, namespace: str) -> None:
    core.create_namespaced_config_map(
        namespace, body({"metadata": {"name": "fixed"}, "data": {"a": "1"}, "immutable": True})
    )
    with pytest.raises(ApiException) as raised:
        core.patch_namespaced_config_map("fixed", namespace, {"data": {"a": "2"}})
    assert raised.value.status == 422
    assert "field is immutable when `immutable` is set" in str(raised.value.body)
    relabelled = core.patch_namespaced_config_map(
        "fixed", namespace, {"metadata": {"labels": {"x": "y"}}}
    )
    assert relabelled.metadata.labels == {"x": "y"}


def test_no_new_finalizers_while_deleting(core: Any, namespace: str) -> None:
    core.create_namespaced_config_map(
        namespace, body({"metadata": {"name": "going", "finalizers": ["example.com/a"]}})
    )
    core.delete_namespaced_config_map("going", namespace)
    with pytest.raises(ApiException) as raised:
        core.patch_namespaced_config_map(
            "going", namespace, {"metadata": {"finalizers": ["example.com/a", "example.com/b"]}}
        )
    assert raised.value.status == 422
    assert "no new finalizers can be added if the object is being deleted" in str(raised.value.body)


def test_leaving_node_port_releases_the_ports(core: Any, namespace: str) -> None:
    created = core.create_namespaced_service(
        namespace,
        body({"metadata": {"name": "np"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
    )
    node_port = created.spec.ports[0].node_port
    plain = core.patch_namespaced_service("np", namespace, {"spec": {"type": "ClusterIP"}})
    assert plain.spec.ports[0].node_port is None
    again = core.create_namespaced_service(
        namespace,
        body(
            {
                "metadata": {"name": "np2"},
                "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": node_port}]},
            }
        ),
    )
    assert again.spec.ports[0].node_port == node_port


def test_scale_subresource(api: kubernetes.client.ApiClient, namespace: str) -> None:
    apps: Any = kubernetes.client.AppsV1Api(api)
    apps.create_namespaced_deployment(
        namespace,
        body({"metadata": {"name": "s"}, "spec": {"selector": _SELECTOR, "template": _TEMPLATE}}),
    )
    scale = apps.read_namespaced_deployment_scale("s", namespace)
    assert (scale.spec.replicas, scale.status.selector) == (1, "app=x")
    scaled = apps.patch_namespaced_deployment_scale("s", namespace, {"spec": {"replicas": 4}})
    assert scaled.spec.replicas == 4
    deployment = apps.read_namespaced_deployment("s", namespace)
    assert (deployment.spec.replicas, deployment.metadata.generation) == (4, 2)
    scaled.spec.replicas = 2
    scaled.metadata.resource_version = "1"  # stale: the precondition fails
    with pytest.raises(ApiException) as raised:
        apps.replace_namespaced_deployment_scale("s", namespace, scaled)
    assert raised.value.status == 409
