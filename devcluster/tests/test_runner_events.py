"""The kubelet's Events: one per container, reason and message, counted; expired after
an hour as kube-apiserver's --event-ttl does."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import kubernetes.client
import pytest

from devcluster.runner import events
from devcluster.runner.events import WARNING, EventRecorder, container_field_path, expire_events
from devcluster.runner.kube import Kube
from devcluster.runner.testing import wait_for


def pod(core: Any, namespace: str) -> dict[str, Any]:
    created = core.create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]},
        },
    )
    return {"metadata": {"name": "web", "namespace": namespace, "uid": created.metadata.uid}}


async def test_a_repeated_event_is_counted_not_repeated(
    api: kubernetes.client.ApiClient,
    core: kubernetes.client.CoreV1Api,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events, "REWRITE_INTERVAL_S", 0.2)
    recorder = EventRecorder(Kube(api), "kubelet", "node-1")
    subject = pod(core, namespace)
    field_path = container_field_path("app")

    def fail_readiness() -> None:
        recorder.record(subject, WARNING, "Unhealthy", "Readiness probe failed: 503", field_path)

    def counted(expected: dict[str, int]) -> Any:
        items = core.list_namespaced_event(namespace).items
        return {e.reason: e.count for e in items} == expected and items

    fail_readiness()
    await asyncio.to_thread(wait_for, "the event", lambda: counted({"Unhealthy": 1}))
    fail_readiness()
    fail_readiness()
    recorder.record(subject, WARNING, "BackOff", "Back-off restarting failed container app")
    written = await asyncio.to_thread(
        wait_for, "the two events, counted", lambda: counted({"Unhealthy": 3, "BackOff": 1})
    )
    await recorder.close()
    unhealthy = next(e for e in written if e.reason == "Unhealthy")
    assert unhealthy.type == "Warning"
    assert unhealthy.message == "Readiness probe failed: 503"
    assert unhealthy.involved_object.uid == subject["metadata"]["uid"]
    assert unhealthy.involved_object.field_path == "spec.containers{app}"
    assert (unhealthy.source.component, unhealthy.source.host) == ("kubelet", "node-1")
    assert unhealthy.metadata.name.startswith("web.")


async def test_events_older_than_the_ttl_are_deleted(
    api: kubernetes.client.ApiClient, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    now = datetime.datetime.now(datetime.UTC)

    def event(name: str, age: datetime.timedelta) -> Any:
        stamp = (now - age).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": namespace},
            "reason": "Unhealthy",
            "message": "Readiness probe failed",
            "type": "Warning",
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
        }

    core.create_namespaced_event(namespace, event("old", datetime.timedelta(hours=2)))
    core.create_namespaced_event(namespace, event("recent", datetime.timedelta(minutes=5)))
    assert await expire_events(Kube(api)) >= 1
    names = [e.metadata.name for e in core.list_namespaced_event(namespace).items]
    assert names == ["recent"]
