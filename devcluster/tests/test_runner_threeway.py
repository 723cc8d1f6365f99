"""The runner's three-way patch, case by case, against kubectl's documented results."""

from __future__ import annotations

from typing import Any

from devcluster.apiserver.patch import strategic_merge_patch
from devcluster.runner.threeway import three_way_patch


def reconcile(original: Any, modified: Any, current: Any) -> Any:
    """What the server stores after the patch: the patch itself and its result."""
    patch = three_way_patch(original, modified, current)
    return patch, strategic_merge_patch(current, patch)


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "app", "image": "app:1", **fields}


def pod_template(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"containers": list(containers), **spec}}}}


def test_nothing_to_do_is_an_empty_patch() -> None:
    manifest = {"data": {"a": "1"}, "metadata": {"labels": {"app": "x"}}}
    live = {**manifest, "metadata": {"labels": {"app": "x"}, "uid": "u", "resourceVersion": "7"}}
    assert three_way_patch(manifest, manifest, live) == {}


def test_a_drifted_field_gets_the_manifests_value_back() -> None:
    manifest = {"data": {"config.yaml": "devices: []\n", "other": "1"}}
    live = {"data": {"config.yaml": "devices: [\n", "other": "1"}}
    patch, result = reconcile(manifest, manifest, live)
    assert patch == {"data": {"config.yaml": "devices: []\n"}}
    assert result == manifest


def test_a_field_removed_from_the_manifest_is_removed_and_others_fields_stay() -> None:
    last = {"metadata": {"labels": {"app": "x", "tier": "web"}}, "data": {"a": "1", "b": "2"}}
    manifest = {"metadata": {"labels": {"app": "x"}}, "data": {"a": "1"}}
    live = {
        "metadata": {"labels": {"app": "x", "tier": "web", "owner": "someone"}, "uid": "u"},
        "data": {"a": "1", "b": "2"},
    }
    patch, result = reconcile(last, manifest, live)
    assert patch == {"metadata": {"labels": {"tier": None}}, "data": {"b": None}}
    assert result == {
        "metadata": {"labels": {"app": "x", "owner": "someone"}, "uid": "u"},
        "data": {"a": "1"},
    }


def test_keyed_lists_merge_by_their_key() -> None:
    last = pod_template(
        container(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
        container(name="sidecar"),
    )
    manifest = pod_template(container(env=[{"name": "A", "value": "1"}]))
    live = pod_template(
        container(
            image="app:2",
            env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            terminationMessagePath="/dev/termination-log",
        ),
        container(name="sidecar"),
        container(name="injected"),
    )
    patch, result = reconcile(last, manifest, live)
    assert patch == pod_template(
        {"name": "app", "image": "app:1", "env": [{"name": "B", "$patch": "delete"}]},
        {"name": "sidecar", "$patch": "delete"},
    )
    # The container someone else added stays; so does a field the server defaulted.
    assert result == pod_template(
        container(env=[{"name": "A", "value": "1"}], terminationMessagePath="/dev/termination-log"),
        container(name="injected"),
    )


def test_atomic_lists_are_replaced_whole() -> None:
    manifest = {"spec": {"template": {"spec": {"containers": [container(args=["--a", "--b"])]}}}}
    live = {"spec": {"template": {"spec": {"containers": [container(args=["--c"])]}}}}
    patch, result = reconcile(manifest, manifest, live)
    assert patch == pod_template({"name": "app", "args": ["--a", "--b"]})
    assert result == manifest


def test_merged_scalar_lists_add_and_delete_items() -> None:
    last = {"metadata": {"finalizers": ["a/one", "a/two"]}}
    manifest = {"metadata": {"finalizers": ["a/one", "a/three"]}}
    live = {"metadata": {"finalizers": ["a/one", "a/two", "b/theirs"]}}
    patch, result = reconcile(last, manifest, live)
    assert patch == {
        "metadata": {"finalizers": ["a/three"], "$deleteFromPrimitiveList/finalizers": ["a/two"]}
    }
    assert result == {"metadata": {"finalizers": ["a/one", "b/theirs", "a/three"]}}


def test_retain_keys_fields_drop_what_the_manifest_switched_away_from() -> None:
    volume = {"name": "data", "emptyDir": {}}
    manifest = pod_template(container(), volumes=[volume])
    manifest["spec"]["strategy"] = {"type": "Recreate"}
    last = pod_template(container(), volumes=[volume])
    last["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}
    live = pod_template(container(), volumes=[{"name": "data", "hostPath": {"path": "/x"}}])
    live["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}
    _, result = reconcile(last, manifest, live)
    assert result == manifest


def test_numbers_compare_by_value_but_booleans_are_not_numbers() -> None:
    manifest = {"spec": {"replicas": 2, "paused": True, "ratio": 1}}
    assert (
        three_way_patch(manifest, manifest, {"spec": {"replicas": 2.0, "paused": True, "ratio": 1}})
        == {}
    )
    assert three_way_patch(
        manifest, manifest, {"spec": {"replicas": 2, "paused": 1, "ratio": True}}
    ) == {"spec": {"paused": True, "ratio": 1}}


def test_without_a_last_applied_configuration_nothing_is_deleted() -> None:
    manifest = {"data": {"a": "1"}}
    live = {"data": {"a": "2", "b": "theirs"}}
    patch, result = reconcile({}, manifest, live)
    assert patch == {"data": {"a": "1"}}
    assert result == {"data": {"a": "1", "b": "theirs"}}
