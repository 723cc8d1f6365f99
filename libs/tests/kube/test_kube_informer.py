"""The Informer against the devcluster: wire-shape objects, batches, selectors, stop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import kubernetes.client
import pytest

from devcluster.testing import RunningDevCluster
from micro.kube import CONFIG_MAPS, PODS, Backoff, Informer, InformerEvent


def config_map(name: str, labels: dict[str, str], value: str = "1") -> Any:
    return kubernetes.client.V1ConfigMap(
        metadata=kubernetes.client.V1ObjectMeta(name=name, labels=labels), data={"k": value}
    )


def informer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("Informer(")]


async def test_list_then_watch_delivers_wire_json_and_every_change(
    pods: Any, eventually: Any
) -> None:
    core = pods.core
    core.create_namespaced_config_map(pods.namespace, config_map("a", {"app": "x"}))
    core.create_namespaced_config_map(pods.namespace, config_map("other", {"app": "y"}))
    heard: list[tuple[str, str]] = []

    def listen(events: Sequence[InformerEvent]) -> None:
        heard.extend((e.type, e.key) for e in events)

    informer = Informer(pods.api, CONFIG_MAPS, namespace=pods.namespace, label_selector="app=x")
    informer.subscribe(listen)
    async with informer:
        assert await informer.wait_synced(10)
        (listed,) = informer.snapshot().values()
        assert listed["kind"] == "ConfigMap"  # list items look like watch objects
        assert listed["apiVersion"] == "v1"
        assert listed["data"] == {"k": "1"}  # plain JSON, as sent
        core.create_namespaced_config_map(pods.namespace, config_map("b", {"app": "x"}))
        core.patch_namespaced_config_map("a", pods.namespace, {"data": {"k": "2"}})
        core.delete_namespaced_config_map("b", pods.namespace)
        await eventually(lambda: len(heard) == 4)
        assert informer.snapshot()[f"{pods.namespace}/a"]["data"] == {"k": "2"}
        assert informer.last_error is None
    ns = pods.namespace
    assert heard == [
        ("ADDED", f"{ns}/a"),
        ("ADDED", f"{ns}/b"),
        ("MODIFIED", f"{ns}/a"),
        ("DELETED", f"{ns}/b"),
    ]
    assert informer_threads() == []


async def test_field_selectors_narrow_the_watch(pods: Any, eventually: Any) -> None:
    pods.create("p-1", labels={"app": "z"})
    pods.create("p-2", labels={"app": "z"})
    informer = Informer(
        pods.api, PODS, namespace=pods.namespace, field_selector="metadata.name=p-2"
    )
    async with informer:
        await informer.wait_synced(10)
        assert list(informer.snapshot()) == [f"{pods.namespace}/p-2"]


async def test_a_relist_after_410_arrives_as_one_batch(
    pods: Any,
    eventually: Any,
    registry_cluster: RunningDevCluster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="micro.kube.informer")
    core = pods.core
    for name in ("a", "b", "c"):
        core.create_namespaced_config_map(pods.namespace, config_map(name, {"app": "r"}))
    batches: list[list[tuple[str, str]]] = []
    informer = Informer(
        pods.api,
        CONFIG_MAPS,
        namespace=pods.namespace,
        label_selector="app=r",
        backoff=Backoff(0.02, 0.5),
    )
    informer.subscribe(lambda events: batches.append([(e.type, e.key) for e in events]))
    async with informer:
        await informer.wait_synced(10)
        assert [len(batch) for batch in batches] == [3]  # the first list: one batch
        pods.create("bump", labels={})  # moves the version past the informer's
        registry_cluster.stop()
        await eventually(lambda: informer.last_error is not None)
        registry_cluster.start()
        pods.reconnect()
        # Wait for the relist itself: the watch may reconnect (clearing last_error)
        # a moment before the 410 arrives and is logged.
        await eventually(
            lambda: (
                informer.last_error is None
                and any("expired (410)" in r.getMessage() for r in caplog.records)
            ),
            "the 410 relist",
            limit_s=20,
        )
    assert informer_threads() == []
    assert any("expired (410)" in r.getMessage() for r in caplog.records)
    assert len(batches) == 1  # the relist found nothing new: no empty batch


async def test_stop_while_the_api_is_unreachable_leaves_no_thread() -> None:
    configuration = kubernetes.client.Configuration()
    configuration.host = "https://127.0.0.1:9"  # nothing listens there
    api = kubernetes.client.ApiClient(configuration)
    informer = Informer(api, PODS, namespace="default", backoff=Backoff(0.02, 0.2))
    await informer.start()
    assert not await informer.wait_synced(0.5)
    assert informer.last_error is not None
    assert informer.snapshot() == {}
    await informer.stop()
    assert informer_threads() == []
    api.close()  # type: ignore[no-untyped-call]


async def test_an_informer_starts_once(pods: Any) -> None:
    informer = Informer(pods.api, PODS, namespace=pods.namespace)
    async with informer:
        with pytest.raises(RuntimeError, match="already started"):
            await informer.start()
