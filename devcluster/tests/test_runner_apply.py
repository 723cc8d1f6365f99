"""The runner's `kubectl apply` against the API server: created, configured, unchanged,
and live objects that drifted from their manifests brought back."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from devcluster.runner import manifests
from devcluster.runner.kube import Kube
from devcluster.runner.testing import deployment

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def kube(api: kubernetes.client.ApiClient) -> Kube:
    return Kube(api)


def config_map(namespace: str, data: dict[str, str], **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": namespace, "labels": labels},
        "data": data,
    }


def apply(kube: Kube, manifest: dict[str, Any]) -> str:
    # apply_one fills in defaults (the namespace): give it a copy, as a file would.
    return manifests.apply_one(kube, copy.deepcopy(manifest))


def test_unchanged_manifest_on_an_unchanged_object(kube: Kube, namespace: str) -> None:
    manifest = config_map(namespace, {"config.yaml": "level: info\n"}, app="web")
    assert apply(kube, manifest) == "configmap/settings created"
    assert apply(kube, manifest) == "configmap/settings unchanged"


def test_drifted_configmap_data_is_restored(
    kube: Kube, namespace: str, core: kubernetes.client.CoreV1Api
) -> None:
    manifest = config_map(namespace, {"config.yaml": "devices: []\n"}, app="web")
    apply(kube, manifest)
    core.patch_namespaced_config_map(
        "settings", namespace, {"data": {"config.yaml": "devices: [\n  - {name"}}
    )
    assert apply(kube, manifest) == "configmap/settings configured"
    live: Any = core.read_namespaced_config_map("settings", namespace)
    assert live.data == {"config.yaml": "devices: []\n"}
    assert apply(kube, manifest) == "configmap/settings unchanged"


def test_drifted_deployment_fields_are_restored(
    kube: Kube, namespace: str, api: kubernetes.client.ApiClient
) -> None:
    apps: Any = kubernetes.client.AppsV1Api(api)
    manifest = deployment("web", namespace, replicas=2, env={"LEVEL": "info"})
    apply(kube, manifest)
    apps.patch_namespaced_deployment(
        "web",
        namespace,
        {
            "spec": {
                "replicas": 5,
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "image": "devcluster-test/app:broken",
                                "env": [{"name": "LEVEL", "value": "debug"}],
                            }
                        ]
                    }
                },
            }
        },
    )
    assert apply(kube, manifest) == "deployment/web configured"
    live = apps.read_namespaced_deployment("web", namespace)
    assert live.spec.replicas == 2
    [container] = live.spec.template.spec.containers
    assert container.image == "devcluster-test/app:1"
    assert {e.name: e.value for e in container.env if e.value is not None} == {"LEVEL": "info"}
    assert apply(kube, manifest) == "deployment/web unchanged"


def test_a_field_removed_from_the_manifest_is_removed(
    kube: Kube, namespace: str, api: kubernetes.client.ApiClient
) -> None:
    apps: Any = kubernetes.client.AppsV1Api(api)
    before = deployment("web", namespace, env={"LEVEL": "info", "OLD": "1"})
    before["metadata"]["labels"] = {"app": "web", "tier": "front"}
    apply(kube, before)
    after = deployment("web", namespace, env={"LEVEL": "info"})
    after["metadata"]["labels"] = {"app": "web"}
    assert apply(kube, after) == "deployment/web configured"
    live = apps.read_namespaced_deployment("web", namespace)
    assert live.metadata.labels == {"app": "web"}
    names = [e.name for e in live.spec.template.spec.containers[0].env]
    assert "OLD" not in names
    assert "LEVEL" in names


def test_fields_only_on_the_live_object_stay(
    kube: Kube, namespace: str, api: kubernetes.client.ApiClient
) -> None:
    apps: Any = kubernetes.client.AppsV1Api(api)
    manifest = deployment("web", namespace)
    manifest["metadata"]["labels"] = {"app": "web"}
    apply(kube, manifest)
    apps.patch_namespaced_deployment(
        "web",
        namespace,
        {"metadata": {"labels": {"team": "theirs"}, "annotations": {"note": "kept"}}},
    )
    apps.patch_namespaced_deployment_status(
        "web", namespace, {"status": {"observedGeneration": 1, "replicas": 2}}
    )
    assert apply(kube, manifest) == "deployment/web unchanged"
    live = apps.read_namespaced_deployment("web", namespace)
    assert live.metadata.labels == {"app": "web", "team": "theirs"}
    assert live.metadata.annotations["note"] == "kept"
    assert live.status.replicas == 2


def test_an_object_without_the_annotation_is_adopted(
    kube: Kube, namespace: str, core: kubernetes.client.CoreV1Api
) -> None:
    manifest = config_map(namespace, {"a": "1"})
    by_hand: Any = {
        "metadata": {"name": "settings", "labels": {"made": "by-hand"}},
        "data": {"a": "2"},
    }
    core.create_namespaced_config_map(namespace, by_hand)
    assert apply(kube, manifest) == "configmap/settings configured"
    live: Any = core.read_namespaced_config_map("settings", namespace)
    assert live.data == {"a": "1"}
    assert live.metadata.labels == {"made": "by-hand"}
    assert manifests.LAST_APPLIED in live.metadata.annotations
    assert apply(kube, manifest) == "configmap/settings unchanged"


def test_the_projects_manifests_apply_unchanged_the_second_time(
    kube: Kube, core: kubernetes.client.CoreV1Api
) -> None:
    """No field the API server fills in may read as drift: `make run` says unchanged."""
    every = manifests.load([REPO_ROOT / ".k8s"])
    namespaces = {m["metadata"]["name"] for m in every if m["kind"] == "Namespace"}
    try:
        first = [manifests.apply_one(kube, m) for m in copy.deepcopy(every)]
        assert all(line.endswith(" created") for line in first), first
        second = [manifests.apply_one(kube, m) for m in copy.deepcopy(every)]
        assert [line for line in second if not line.endswith(" unchanged")] == []
    finally:
        for name in namespaces:
            try:
                core.delete_namespace(name)
            except ApiException as error:
                if error.status != 404:
                    raise
