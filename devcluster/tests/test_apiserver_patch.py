"""PATCH: strategic merge (with the merge keys of the built-in kinds), merge and JSON patch."""

from __future__ import annotations

from typing import Any

import httpx
import kubernetes.client
import pytest

from devcluster.apiserver.patch import json_patch, merge_patch, strategic_merge_patch
from devcluster.apiserver.status import ApiError
from devcluster.testing import body

SMP = {"Content-Type": "application/strategic-merge-patch+json"}
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}

POD: dict[str, Any] = {
    "spec": {
        "containers": [
            {
                "name": "app",
                "image": "app:1",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 80, "name": "http"}],
                "volumeMounts": [{"name": "v", "mountPath": "/data"}],
            },
            {"name": "side", "image": "side:1"},
        ],
        "volumes": [{"name": "v", "emptyDir": {}}],
    },
    "status": {
        "conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "PodScheduled", "status": "True"},
        ]
    },
}


def test_strategic_merge_merges_lists_by_their_keys() -> None:
    patched = strategic_merge_patch(
        POD,
        {
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                        "ports": [{"containerPort": 443, "name": "https"}],
                    }
                ],
                "volumes": [{"name": "w", "emptyDir": {}}],
            },
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        },
    )
    app, side = patched["spec"]["containers"]
    assert (app["image"], side["name"]) == ("app:1", "side")
    assert app["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "3"},
        {"name": "C", "value": "4"},
    ]
    assert [p["containerPort"] for p in app["ports"]] == [80, 443]
    assert [v["name"] for v in patched["spec"]["volumes"]] == ["v", "w"]
    assert patched["status"]["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "PodScheduled", "status": "True"},
    ]


def test_strategic_merge_directives() -> None:
    patched = strategic_merge_patch(
        POD,
        {
            "spec": {
                "containers": [
                    {"name": "side", "$patch": "delete"},
                    {"name": "app", "env": [{"name": "A", "$patch": "delete"}]},
                ],
                "$setElementOrder/containers": [{"name": "app"}],
            },
        },
    )
    assert [c["name"] for c in patched["spec"]["containers"]] == ["app"]
    assert patched["spec"]["containers"][0]["env"] == [{"name": "B", "value": "2"}]
    replaced = strategic_merge_patch(
        POD, {"spec": {"volumes": [{"$patch": "replace"}, {"name": "only", "emptyDir": {}}]}}
    )
    assert replaced["spec"]["volumes"] == [{"name": "only", "emptyDir": {}}]
    dropped = strategic_merge_patch(POD, {"status": {"$patch": "delete"}})
    assert "status" not in dropped
    retained = strategic_merge_patch({"a": 1, "b": 2, "c": 3}, {"$retainKeys": ["a", "c"], "c": 4})
    assert retained == {"a": 1, "c": 4}
    finalizers = strategic_merge_patch(
        {"metadata": {"finalizers": ["a"]}}, {"metadata": {"finalizers": ["b"]}}
    )
    assert finalizers["metadata"]["finalizers"] == ["a", "b"]
    removed = strategic_merge_patch(
        {"metadata": {"finalizers": ["a", "b"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}},
    )
    assert removed["metadata"]["finalizers"] == ["b"]
    with pytest.raises(ApiError):
        strategic_merge_patch(POD, {"spec": {"containers": [{"image": "no-key"}]}})


def test_service_ports_merge_by_port_and_atomic_lists_are_replaced() -> None:
    service = {
        "spec": {
            "ports": [{"port": 80, "name": "http"}],
            "selector": {"a": "b"},
            "externalIPs": ["1.1.1.1"],
        }
    }
    patched = strategic_merge_patch(
        service, {"spec": {"ports": [{"port": 443, "name": "s"}], "externalIPs": ["2.2.2.2"]}}
    )
    assert [p["port"] for p in patched["spec"]["ports"]] == [80, 443]
    assert patched["spec"]["externalIPs"] == ["2.2.2.2"]


def test_merge_patch_replaces_lists_and_null_deletes() -> None:
    patched = merge_patch(POD, {"spec": {"volumes": [], "containers": None}, "x": {"y": 1}})
    assert patched["spec"] == {"volumes": []}
    assert patched["x"] == {"y": 1}


def test_json_patch_operations() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "d"}
    patched = json_patch(
        doc,
        [
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "replace", "path": "/c", "value": "e"},
            {"op": "move", "from": "/c", "path": "/f"},
            {"op": "copy", "from": "/a/b", "path": "/g"},
            {"op": "remove", "path": "/a/b/0"},
            {"op": "test", "path": "/f", "value": "e"},
            {"op": "add", "path": "/h~1i", "value": True},
        ],
    )
    assert patched == {"a": {"b": [2, 3]}, "f": "e", "g": [1, 2, 3], "h/i": True}
    assert doc == {"a": {"b": [1, 2]}, "c": "d"}  # the input is left alone
    with pytest.raises(ApiError) as failed:
        json_patch(doc, [{"op": "test", "path": "/c", "value": "x"}])
    assert failed.value.code == 422
    with pytest.raises(ApiError):
        json_patch(doc, [{"op": "remove", "path": "/missing"}])


def test_the_official_client_sends_strategic_merge_for_dicts(
    api: kubernetes.client.ApiClient, namespace: str
) -> None:
    apps: Any = kubernetes.client.AppsV1Api(api)
    template = {"metadata": {"labels": {"app": "w"}}, "spec": POD["spec"]}
    apps.create_namespaced_deployment(
        namespace,
        body(
            {
                "metadata": {"name": "w"},
                "spec": {"selector": {"matchLabels": {"app": "w"}}, "template": template},
            }
        ),
    )
    patched = apps.patch_namespaced_deployment(
        "w",
        namespace,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "app", "image": "app:2", "env": [{"name": "A", "value": "9"}]}
                        ],
                    }
                }
            }
        },
    )
    containers = patched.spec.template.spec.containers
    assert [c.name for c in containers] == ["app", "side"]
    assert containers[0].image == "app:2"
    assert [(e.name, e.value) for e in containers[0].env] == [("A", "9"), ("B", "2")]


def test_patch_content_types_over_http(http: httpx.Client, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    http.post(
        path, json={"metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"x": "1", "y": "2"}}
    )
    smp = http.patch(f"{path}/c", json={"data": {"x": None, "z": "3"}}, headers=SMP)
    assert smp.json()["data"] == {"y": "2", "z": "3"}
    merge = http.patch(f"{path}/c", json={"metadata": {"labels": {"b": "2"}}}, headers=MERGE)
    assert merge.json()["metadata"]["labels"] == {"a": "1", "b": "2"}
    ops = [{"op": "replace", "path": "/data/y", "value": "9"}]
    assert http.patch(f"{path}/c", json=ops, headers=JSON_PATCH).json()["data"]["y"] == "9"
    stale = http.patch(
        f"{path}/c", json={"metadata": {"resourceVersion": "1"}, "data": {}}, headers=MERGE
    )
    assert stale.status_code == 409  # a resourceVersion in a patch is a precondition
    unknown = http.patch(f"{path}/c", content=b"{}", headers={"Content-Type": "text/plain"})
    assert unknown.status_code == 415
    assert unknown.json()["reason"] == "UnsupportedMediaType"
    missing = http.patch(f"{path}/none", json={}, headers=MERGE)
    assert missing.status_code == 404
