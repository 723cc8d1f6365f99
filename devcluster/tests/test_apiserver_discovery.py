"""Discovery and health endpoints, derived from the one resource table."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import kubernetes.client

from devcluster.apiserver.resources import RESOURCES, group_versions
from devcluster.testing import RunningDevCluster


def test_health_endpoints_answer_without_a_token(devcluster: RunningDevCluster) -> None:
    context = ssl.create_default_context(cafile=str(devcluster.ca_file))
    with httpx.Client(verify=context) as anonymous:
        for path in ("/healthz", "/livez", "/readyz", "/version"):
            answer = anonymous.get(f"{devcluster.url}{path}")
            assert answer.status_code == 200, path
        assert anonymous.get(f"{devcluster.url}/readyz").text == "ok"


def test_version_is_a_kubernetes_version_info(http: httpx.Client) -> None:
    info = http.get("/version").json()
    assert info["major"] == "1"
    assert info["gitVersion"].startswith("v1.")
    assert {"minor", "platform", "goVersion"} <= info.keys()


def test_core_discovery_lists_v1_and_every_core_resource(http: httpx.Client) -> None:
    versions = http.get("/api").json()
    assert versions["kind"] == "APIVersions"
    assert versions["versions"] == ["v1"]
    listing = http.get("/api/v1").json()
    assert listing["kind"] == "APIResourceList"
    assert listing["groupVersion"] == "v1"
    names = {entry["name"]: entry for entry in listing["resources"]}
    for resource in RESOURCES:
        if resource.group == "":
            assert names[resource.plural]["kind"] == resource.kind
            assert names[resource.plural]["namespaced"] is resource.namespaced
    assert names["pods"]["shortNames"] == ["po"]
    assert set(names["pods"]["verbs"]) >= {"get", "list", "watch", "create", "patch", "delete"}
    assert names["pods/status"]["verbs"] == ["get", "patch", "update"]
    assert names["pods/log"]["verbs"] == ["get"]
    token = names["serviceaccounts/token"]
    assert (token["group"], token["version"], token["kind"]) == (
        "authentication.k8s.io",
        "v1",
        "TokenRequest",
    )


def test_group_discovery_lists_every_group_and_its_resources(http: httpx.Client) -> None:
    groups = http.get("/apis").json()
    assert groups["kind"] == "APIGroupList"
    served = {group["name"]: group for group in groups["groups"]}
    assert set(served) == set(group_versions())
    for name in (
        "apps",
        "discovery.k8s.io",
        "rbac.authorization.k8s.io",
        "networking.k8s.io",
        "policy",
    ):
        assert served[name]["preferredVersion"]["groupVersion"] == f"{name}/v1"
        group = http.get(f"/apis/{name}").json()
        assert group["kind"] == "APIGroup"
        listing = http.get(f"/apis/{name}/v1").json()
        kinds = {entry["name"]: entry["kind"] for entry in listing["resources"]}
        for resource in RESOURCES:
            if resource.group == name:
                assert kinds[resource.plural] == resource.kind
    assert "deployments/status" in {
        entry["name"] for entry in http.get("/apis/apps/v1").json()["resources"]
    }


def test_unknown_paths_are_404_status(http: httpx.Client) -> None:
    for path in (
        "/apis/nothing.example.com",
        "/apis/apps/v9",
        "/api/v1/widgets",
        "/api/v1/namespaces/default/widgets",
    ):
        answer = http.get(path)
        assert answer.status_code == 404, path
        assert answer.json()["kind"] == "Status"
        assert answer.json()["reason"] == "NotFound"


def test_official_client_discovers_versions(api: kubernetes.client.ApiClient) -> None:
    versions: Any = kubernetes.client.CoreApi(api).get_api_versions()
    assert versions.versions == ["v1"]
    groups: Any = kubernetes.client.ApisApi(api).get_api_versions()
    assert "apps" in {group.name for group in groups.groups}
    resources: Any = kubernetes.client.AppsV1Api(api).get_api_resources()
    assert "deployments" in {resource.name for resource in resources.resources}


def test_openapi_v2_is_a_document_without_schemas(http: httpx.Client) -> None:
    document = http.get("/openapi/v2", headers={"Accept": "application/json"}).json()
    assert document["swagger"] == "2.0"
    assert document["definitions"] == {}
    proto = http.get(
        "/openapi/v2",
        headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"},
    )
    assert proto.headers["content-type"] == "application/octet-stream"
    assert proto.content.startswith(b"\n\x032.0")  # field 1 (swagger) = "2.0"
