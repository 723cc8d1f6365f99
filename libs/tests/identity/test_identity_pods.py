"""A token outlives its pod; the callee refuses it once the devcluster deletes the pod,
and a caller's fresh pod, not yet seen by the watch, is accepted after one GET."""

from __future__ import annotations

from typing import Any

import grpc
import kubernetes.client

from micro.testing.processes import free_port
from micro.testing.service_tokens import Issuer, claims, sign

WATCH_LIMIT_S = 10.0


def pod_token(issuer: Issuer, pods: Any, name: str, uid: str) -> str:
    return sign(issuer, claims(namespace=pods.namespace, pod=name, pod_uid=uid))


async def test_a_deleted_pods_token_is_refused(
    issuer: Issuer, start_guarded: Any, pods: Any, refused_within: Any
) -> None:
    pods.create("admin-1", labels={"app": "admin-srv"})
    uid = pods.read("admin-1").metadata.uid
    guarded = await start_guarded(pods=pods.api, namespace=pods.namespace)
    token = pod_token(issuer, pods, "admin-1", uid)
    assert await guarded.echo(token) == f"system:serviceaccount:{pods.namespace}:admin-srv"
    pods.delete("admin-1", grace_s=0)
    error = await refused_within(lambda: guarded.echo(token), WATCH_LIMIT_S)
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == f"caller identity: pod {pods.namespace}/admin-1 ({uid}) is gone"


async def test_a_fresh_pod_is_accepted_and_a_replaced_one_refused(
    issuer: Issuer, start_guarded: Any, pods: Any
) -> None:
    guarded = await start_guarded(pods=pods.api, namespace=pods.namespace)
    # Created right before the call: the watch may not have told yet; a GET settles it.
    pods.create("admin-2", labels={"app": "admin-srv"})
    uid = pods.read("admin-2").metadata.uid
    assert (await guarded.echo(pod_token(issuer, pods, "admin-2", uid))).endswith(":admin-srv")
    # A pod of that name with another uid: the token's pod is gone, however fast.
    stale = pod_token(issuer, pods, "admin-2", "0b1c2d3e-0000-4000-8000-000000000000")
    error = await guarded.refusal(stale)
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "is gone" in (error.details() or "")
    # A pod that never existed: refused, and repeated calls reuse the one answer.
    ghost = pod_token(issuer, pods, "admin-ghost", "1b1c2d3e-0000-4000-8000-000000000000")
    before = guarded.guard.pods.lookups
    for _ in range(3):
        assert (await guarded.refusal(ghost)).code() is grpc.StatusCode.UNAUTHENTICATED
    assert guarded.guard.pods.lookups == before + 1


async def test_an_unreachable_api_lets_a_signed_caller_through_with_one_lookup(
    issuer: Issuer, start_guarded: Any
) -> None:
    configuration = kubernetes.client.Configuration()
    configuration.host = f"http://127.0.0.1:{free_port()}"  # nothing listens
    api = kubernetes.client.ApiClient(configuration)
    try:
        guarded = await start_guarded(pods=api, namespace="default")
        token = sign(issuer, claims(pod="admin-9"))
        for _ in range(3):
            assert (await guarded.echo(token)).endswith(":admin-srv")
        assert guarded.guard.pods.lookups == 1
    finally:
        api.close()  # type: ignore[no-untyped-call]
