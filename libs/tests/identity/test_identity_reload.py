"""identity.allow is live: a rule added to the ConfigMap applies to the next call, and
a bad rule is rejected while the last good rules keep applying."""

from __future__ import annotations

from typing import Any

import grpc
import kubernetes.client
import yaml

from devcluster.testing import RunningDevCluster
from micro.testing.service_tokens import Issuer, claims, sign


def allow(*methods: str) -> dict[str, Any]:
    return {"identity": {"allow": [{"callers": ["admin-srv"], "methods": list(methods)}]}}


async def test_a_rule_added_at_run_time_applies_and_a_bad_one_keeps_the_last_good(
    issuer: Issuer,
    start_guarded: Any,
    config_map_app: Any,
    registry_cluster: RunningDevCluster,
    eventually: Any,
) -> None:
    running = await config_map_app(
        local={"registry": {"type": "static"}}, remote=allow("echo.v1.EchoService/Echo")
    )
    handle = running.ctx.config
    guarded = await start_guarded(rules=handle.view(lambda c: c.identity.allow))
    token = sign(issuer, claims())
    assert (await guarded.echo(token)).endswith(":admin-srv")
    denied = await guarded.refusal(token, method="put")
    assert denied.code() is grpc.StatusCode.PERMISSION_DENIED

    await running.change(allow("echo.v1.EchoService/Echo", "/echo.v1.EchoService/Put"))
    await guarded.put(token)  # no restart: the next call reads the new rules

    api = registry_cluster.api_client()
    try:
        kubernetes.client.CoreV1Api(api).patch_namespaced_config_map(
            running.short_name,
            running.namespace,
            {"data": {"config.yaml": yaml.safe_dump(allow("EchoService.Put"))}},
        )
    finally:
        api.close()  # type: ignore[no-untyped-call]
    await eventually(lambda: handle.last_error is not None, "the bad rule's rejection")
    assert "identity.allow.0.methods.0" in handle.last_error
    await guarded.put(token)  # the last good rules still apply
