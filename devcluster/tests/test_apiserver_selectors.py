"""List with label selectors (full syntax), field selectors and pagination."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from kubernetes.client import ApiException

from devcluster.apiserver.selectors import parse_field_selector, parse_label_selector
from devcluster.apiserver.status import ApiError
from devcluster.testing import body

LABELS = {
    "a": {"app": "web", "tier": "front", "rank": "3"},
    "b": {"app": "web", "tier": "back"},
    "c": {"app": "db"},
    "d": {},
}


@pytest.fixture
def labelled(core: Any, namespace: str) -> str:
    for name, labels in LABELS.items():
        core.create_namespaced_config_map(
            namespace, body({"metadata": {"name": name, "labels": labels}})
        )
    return namespace


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", "abcd"),
        ("app=web", "ab"),
        ("app==web", "ab"),
        ("app!=web", "cd"),  # != matches objects without the key
        ("app in (web,db)", "abc"),
        ("app notin (web)", "cd"),  # so does notin
        ("tier", "ab"),
        ("!tier", "cd"),
        ("app=web,tier!=back", "a"),
        ("app in (web), !rank", "b"),
        ("rank>2", "a"),
        ("rank<2", ""),
        ("app=nothing", ""),
    ],
)
def test_label_selectors(core: Any, labelled: str, selector: str, expected: str) -> None:
    found = core.list_namespaced_config_map(labelled, label_selector=selector)
    assert (
        "".join(sorted(c.metadata.name for c in found.items if c.metadata.name in LABELS))
        == expected
    )


@pytest.mark.parametrize("selector", ["app in web", "app=(x", "=x", "a b", "x notin ()", "a=b c"])
def test_malformed_label_selectors_are_400(
    http: httpx.Client, labelled: str, selector: str
) -> None:
    answer = http.get(
        f"/api/v1/namespaces/{labelled}/configmaps", params={"labelSelector": selector}
    )
    assert answer.status_code == 400, selector
    assert answer.json()["reason"] == "BadRequest"


def test_field_selectors_on_metadata(core: Any, labelled: str) -> None:
    one = core.list_namespaced_config_map(labelled, field_selector="metadata.name=b")
    assert [c.metadata.name for c in one.items] == ["b"]
    others = core.list_namespaced_config_map(labelled, field_selector="metadata.name!=b")
    assert "b" not in {c.metadata.name for c in others.items}
    everywhere = core.list_config_map_for_all_namespaces(
        field_selector=f"metadata.namespace={labelled},metadata.name==c"
    )
    assert [(c.metadata.namespace, c.metadata.name) for c in everywhere.items] == [(labelled, "c")]


def test_pod_field_selectors(core: Any, namespace: str) -> None:
    spec = {"containers": [{"name": "m", "image": "busybox:1.36"}]}
    core.create_namespaced_pod(
        namespace,
        body(
            {
                "metadata": {"name": "on-node"},
                "spec": {**spec, "nodeName": "n1", "serviceAccountName": "robot"},
            }
        ),
    )
    core.create_namespaced_pod(namespace, body({"metadata": {"name": "pending"}, "spec": spec}))
    core.patch_namespaced_pod_status(
        "on-node", namespace, {"status": {"phase": "Running", "podIP": "10.1.0.7"}}
    )

    def names(selector: str) -> list[str]:
        pods = core.list_namespaced_pod(namespace, field_selector=selector)
        return sorted(p.metadata.name for p in pods.items)

    assert names("status.phase=Running") == ["on-node"]
    assert names("status.phase!=Running") == ["pending"]
    assert names("status.podIP=10.1.0.7") == ["on-node"]
    assert names("spec.nodeName=n1") == ["on-node"]
    assert names("spec.nodeName=") == ["pending"]
    assert names("spec.serviceAccountName=robot") == ["on-node"]
    assert names("spec.serviceAccountName=default,status.phase=Pending") == ["pending"]


def test_unknown_field_selector_is_400(http: httpx.Client, namespace: str) -> None:
    def refused(plural: str, field: str) -> str:
        answer = http.get(
            f"/api/v1/namespaces/{namespace}/{plural}", params={"fieldSelector": f"{field}=x"}
        )
        assert answer.status_code == 400
        assert answer.json()["reason"] == "BadRequest"
        message: str = answer.json()["message"]
        return message

    # Pods have their own field conversion; ConfigMaps only the generic metadata fields.
    assert refused("pods", "spec.unknown") == "field label not supported: spec.unknown"
    assert refused("configmaps", "status.phase") == (
        '"status.phase" is not a known field selector: only "metadata.name", "metadata.namespace"'
    )


def test_limit_and_continue_page_through_a_list(core: Any, namespace: str) -> None:
    for index in range(7):
        core.create_namespaced_config_map(namespace, body({"metadata": {"name": f"cm-{index}"}}))
    seen: list[str] = []
    token: str | None = None
    versions = set()
    while True:
        page = core.list_namespaced_config_map(namespace, limit=3, _continue=token)
        seen += [c.metadata.name for c in page.items]
        versions.add(page.metadata.resource_version)
        token = page.metadata._continue
        if not token:
            assert page.metadata.remaining_item_count is None
            break
        assert page.metadata.remaining_item_count is not None
    assert seen == [f"cm-{i}" for i in range(7)]
    assert len(versions) == 1  # every page carries the list's resourceVersion


def test_bad_continue_token_is_400(core: Any, namespace: str) -> None:
    with pytest.raises(ApiException) as raised:
        core.list_namespaced_config_map(namespace, limit=1, _continue="%%%")
    assert raised.value.status == 400


def test_parser_keeps_values_and_escapes() -> None:
    selector = parse_label_selector("example.com/app in (a, b-c),x!=")
    assert selector.matches({"example.com/app": "b-c", "x": "y"})
    assert not selector.matches({"example.com/app": "b-c", "x": ""})
    fields = parse_field_selector(r"metadata.name=a\,b", {})
    assert fields.matches({"metadata": {"name": "a,b"}})
    with pytest.raises(ApiError):
        parse_label_selector("a in (b")
