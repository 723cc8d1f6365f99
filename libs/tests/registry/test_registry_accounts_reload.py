"""registry.accounts is live: a changed ConfigMap re-judges the discovered pods at once."""

from __future__ import annotations

from typing import Any

import pytest

from micro.registry import ServiceInstance

SERVICE = "go-micro.user-srv"
PROTOCOLS = {"gomicro-service-protocols": '{"9090": "grpc"}'}


def ids(instances: list[ServiceInstance]) -> list[str]:
    return sorted(i.id for i in instances)


async def test_a_new_accounts_map_applies_while_the_app_runs(
    pods: Any, config_map_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The App registers itself on its own pod, in the namespace it discovers in.
    pods.create("the-app", labels={}, service_account="reload")
    monkeypatch.setenv("POD_NAME", "the-app")
    monkeypatch.setenv("POD_NAMESPACE", pods.namespace)
    for name, account, ip in (
        ("own", "user-srv", "127.0.16.1"),
        ("renamed", "users", "127.0.16.2"),
    ):
        labels = {"gomicro-service-app": SERVICE, "gomicro-service-id": f"{name}.{SERVICE}"}
        pods.create(name, labels=labels, annotations=PROTOCOLS, service_account=account)
        pods.run(name, ip)
    kube = {"kubeconfig": str(pods.cluster.kubeconfig), "namespace": pods.namespace}
    running = await config_map_app(local={"registry": {"type": "k8s", "k8s": kube}}, remote={})
    discovery = running.ctx.discovery
    heard: list[list[str]] = []
    discovery.subscribe(SERVICE, lambda instances: heard.append(ids(instances)))
    assert ids(await discovery.instances(SERVICE)) == [f"own.{SERVICE}"]
    await running.change({"registry": {"accounts": {SERVICE: "users"}}})
    assert heard[-1] == [f"renamed.{SERVICE}"]
    assert ids(await discovery.instances(SERVICE)) == [f"renamed.{SERVICE}"]
    await running.change({})  # back to the default: the short name
    assert heard[-1] == [f"own.{SERVICE}"]
