"""Watch: resourceVersion semantics, replay, 410 Expired, bookmarks, timeouts and
selector transitions, read from the raw newline-delimited stream."""

from __future__ import annotations

import json
import pathlib
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import kubernetes.client
import kubernetes.watch
import pytest

from devcluster.testing import RunningDevCluster, body, running_devcluster

WatchReader = Any  # the `watch` fixture of conftest


def _cm(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "data": {"v": "1"}}


def _names(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"].get("name", "")) for e in events]


def test_watch_without_version_starts_with_the_current_state(
    http: httpx.Client, watch: WatchReader, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    http.post(path, json=_cm("a"))
    http.post(path, json=_cm("b"))
    for version in ({}, {"resourceVersion": "0"}):
        events = watch(path, until=2, timeoutSeconds="5", **version)
        assert _names(events) == [("ADDED", "a"), ("ADDED", "b")]


def test_live_events_follow_the_writes(
    http: httpx.Client, watch: WatchReader, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    listed = http.get(path).json()["metadata"]["resourceVersion"]

    def writes() -> None:
        http.post(path, json=_cm("a"))
        http.patch(
            f"{path}/a",
            json={"data": {"v": "2"}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        http.delete(f"{path}/a")

    # Written once the watch is open, so the events arrive live, not replayed from `listed`.
    events = watch(path, until=3, on_open=writes, resourceVersion=listed, timeoutSeconds="10")
    assert _names(events) == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions)
    assert versions[0] > int(listed)
    assert events[1]["object"]["data"] == {"v": "2"}


def test_watch_from_a_version_replays_exactly_the_changes_after_it(
    http: httpx.Client, watch: WatchReader, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    first = http.post(path, json=_cm("a")).json()["metadata"]["resourceVersion"]
    http.put(f"{path}/a", json={**_cm("a"), "data": {"v": "2"}})
    http.post(path, json=_cm("b"))
    http.delete(f"{path}/a")
    events = watch(path, resourceVersion=first, timeoutSeconds="1")
    assert _names(events) == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    # From the latest version: nothing to replay.
    latest = events[-1]["object"]["metadata"]["resourceVersion"]
    assert watch(path, resourceVersion=latest, timeoutSeconds="1") == []


def test_a_namespace_watch_sees_only_its_namespace(
    http: httpx.Client, watch: WatchReader, namespace: str
) -> None:
    start = http.get("/api/v1/configmaps").json()["metadata"]["resourceVersion"]
    http.post("/api/v1/namespaces/default/configmaps", json=_cm(f"elsewhere-{namespace}"))
    http.post(f"/api/v1/namespaces/{namespace}/configmaps", json=_cm("here"))
    mine = watch(
        f"/api/v1/namespaces/{namespace}/configmaps", resourceVersion=start, timeoutSeconds="1"
    )
    assert _names(mine) == [("ADDED", "here")]
    everywhere = watch("/api/v1/configmaps", resourceVersion=start, timeoutSeconds="1")
    assert {n for _, n in _names(everywhere)} == {f"elsewhere-{namespace}", "here"}


def test_selector_transitions_arrive_as_added_and_deleted(
    http: httpx.Client, watch: WatchReader, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    start = http.get(path).json()["metadata"]["resourceVersion"]
    merge = {"Content-Type": "application/merge-patch+json"}
    http.post(path, json=_cm("x", app="web"))
    http.patch(f"{path}/x", json={"data": {"v": "2"}}, headers=merge)
    moved = http.patch(
        f"{path}/x", json={"metadata": {"labels": {"app": "db"}}}, headers=merge
    ).json()
    http.patch(f"{path}/x", json={"data": {"v": "3"}}, headers=merge)  # not seen
    http.patch(f"{path}/x", json={"metadata": {"labels": {"app": "web"}}}, headers=merge)
    events = watch(path, resourceVersion=start, timeoutSeconds="1", labelSelector="app=web")
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED", "ADDED"]
    gone = events[2]["object"]
    # As kube-apiserver: the last matching content, stamped with the change's version.
    assert gone["metadata"]["labels"] == {"app": "web"}
    assert gone["metadata"]["resourceVersion"] == moved["metadata"]["resourceVersion"]
    assert events[3]["object"]["data"] == {"v": "3"}


def test_pod_field_selector_watch(http: httpx.Client, watch: WatchReader, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/pods"
    start = http.get(path).json()["metadata"]["resourceVersion"]
    http.post(
        path,
        json={
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "m", "image": "busybox:1.36"}]},
        },
    )
    http.patch(
        f"{path}/p/status",
        json={"status": {"phase": "Running"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    events = watch(
        path, resourceVersion=start, timeoutSeconds="1", fieldSelector="status.phase=Running"
    )
    assert _names(events) == [("ADDED", "p")]


def test_bookmarks_and_timeout(http: httpx.Client, watch: WatchReader, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    created = http.post(path, json=_cm("a")).json()
    began = time.monotonic()
    events = watch(
        path,
        resourceVersion=created["metadata"]["resourceVersion"],
        allowWatchBookmarks="true",
        timeoutSeconds="3",
    )
    assert time.monotonic() - began < 10  # closed by the server at the timeout
    assert [e["type"] for e in events] == ["BOOKMARK"]
    mark = events[0]["object"]
    assert (mark["kind"], mark["apiVersion"]) == ("ConfigMap", "v1")
    assert int(mark["metadata"]["resourceVersion"]) >= int(created["metadata"]["resourceVersion"])
    # Without allowWatchBookmarks there are none; the stream still ends cleanly.
    assert (
        watch(path, resourceVersion=created["metadata"]["resourceVersion"], timeoutSeconds="3")
        == []
    )


def test_send_initial_events_ends_with_an_annotated_bookmark(
    http: httpx.Client, watch: WatchReader, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    http.post(path, json=_cm("a"))
    events = watch(
        path,
        until=2,
        sendInitialEvents="true",
        allowWatchBookmarks="true",
        resourceVersionMatch="NotOlderThan",
        timeoutSeconds="5",
    )
    assert _names(events)[0] == ("ADDED", "a")
    assert events[1]["type"] == "BOOKMARK"
    annotations = events[1]["object"]["metadata"]["annotations"]
    assert annotations == {"k8s.io/initial-events-end": "true"}


def test_official_client_watch(core: Any, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, body(_cm("a")))
    stream = kubernetes.watch.Watch().stream(  # type: ignore[no-untyped-call]
        core.list_namespaced_config_map, namespace, timeout_seconds=2
    )
    seen = [(e["type"], e["object"].metadata.name) for e in stream]
    assert seen == [("ADDED", "a")]


@pytest.fixture
def short_history(tmp_path: pathlib.Path) -> Iterator[RunningDevCluster]:
    with running_devcluster(tmp_path / "state", serve_args=["--watch-history", "5"]) as cluster:
        yield cluster


def test_a_version_older_than_the_history_is_410_expired(
    short_history: RunningDevCluster,
) -> None:
    context = ssl.create_default_context(cafile=str(short_history.ca_file))
    headers = {"Authorization": f"Bearer {short_history.admin_token}"}
    with httpx.Client(base_url=short_history.url, verify=context, headers=headers) as http:
        path = "/api/v1/namespaces/default/configmaps"
        first = http.post(path, json=_cm("c0")).json()["metadata"]["resourceVersion"]
        for index in range(1, 10):
            http.post(path, json=_cm(f"c{index}"))
        with http.stream("GET", path, params={"watch": "1", "resourceVersion": first}) as answer:
            assert answer.status_code == 200
            lines = [json.loads(line) for line in answer.iter_lines() if line]
    assert len(lines) == 1
    assert lines[0]["type"] == "ERROR"
    error = lines[0]["object"]
    assert (error["kind"], error["code"], error["reason"]) == ("Status", 410, "Expired")
    assert error["message"].startswith(f"too old resource version: {first} (")


def test_watch_on_one_object(http: httpx.Client, watch: WatchReader, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    http.post(path, json=_cm("a"))
    http.post(path, json=_cm("b"))
    events = watch(f"{path}/b", until=1, timeoutSeconds="5")
    assert _names(events) == [("ADDED", "b")]


def test_a_version_from_the_future_waits_then_is_504(http: httpx.Client, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    current = int(http.get(path).json()["metadata"]["resourceVersion"])
    future = str(current + 1_000_000)
    for params in ({"resourceVersion": future}, {"watch": "1", "resourceVersion": future}):
        answer = http.get(path, params=params)
        assert answer.status_code == 504
        status = answer.json()
        assert status["reason"] == "Timeout"
        assert status["message"].startswith(f"Too large resource version: {future}, current: ")
        assert status["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
    assert http.get(path, params={"resourceVersion": "x"}).status_code == 400
