"""End to end against the devcluster: a pod-bound token that the API server issues
(TokenRequest, audience the callee's name) is verified by an App whose keys and pod
watch come from that API server, through the official client, as in the cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import kubernetes.client
import pytest

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from devcluster.testing import RunningDevCluster
from micro.app import ServiceContext
from micro.config.model import ServiceConfig
from micro.identity import IDENTITY_METADATA_KEY
from micro.testing.apps import config_folder, running_app

SERVICE = "go-micro.token-srv"
WATCH_LIMIT_S = 10.0


def issued_token(pods: Any, account: str, pod: str, audience: str = SERVICE) -> str:
    """What the kubelet projects into the pod: a token bound to it, for one audience."""
    request = kubernetes.client.AuthenticationV1TokenRequest(
        spec=kubernetes.client.V1TokenRequestSpec(
            audiences=[audience],
            expiration_seconds=600,
            bound_object_ref=kubernetes.client.V1BoundObjectReference(
                kind="Pod", api_version="v1", name=pod
            ),
        )
    )
    answer = pods.core.create_namespaced_service_account_token(account, pods.namespace, request)
    return str(answer.status.token)


def account(pods: Any, name: str) -> None:
    pods.core.create_namespaced_service_account(
        pods.namespace,
        kubernetes.client.V1ServiceAccount(metadata=kubernetes.client.V1ObjectMeta(name=name)),
    )


async def echo(port: int, token: str) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = echo_pb2_grpc.EchoServiceStub(channel)
        metadata = ((IDENTITY_METADATA_KEY, token),)
        answer = await stub.Echo(echo_pb2.EchoRequest(text="hi"), metadata=metadata)
        return str(answer.text)


async def refusal(port: int, token: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await echo(port, token)
    return raised.value


async def test_tokens_the_api_server_issues(
    tmp_path: Path,
    pods: Any,
    registry_cluster: RunningDevCluster,
    whoami: Any,
    refused_within: Any,
    restore_logging: None,
) -> None:
    for name in ("admin-srv", "data-srv"):
        account(pods, name)
        pods.create(f"{name}-1", labels={"app": name}, service_account=name)
    config = {
        "server": {"grpc": {"addr": "127.0.0.1:0"}},
        "registry": {
            "type": "static",
            "k8s": {"kubeconfig": str(registry_cluster.kubeconfig), "namespace": pods.namespace},
        },
        "identity": {
            "allow": [{"callers": ["admin-srv"], "methods": ["echo.v1.EchoService/Echo"]}]
        },
    }

    async def compose(ctx: ServiceContext[ServiceConfig]) -> None:
        ctx.add_grpc_service(echo_pb2_grpc.add_EchoServiceServicer_to_server, whoami)

    folder = config_folder(tmp_path / "configs", config)
    env = {"MICRO__IDENTITY__MODE": "kubernetes"}
    async with running_app(SERVICE, ServiceConfig, compose, config_dir=folder, env=env) as app:
        assert app.ctx is not None
        port = app.ctx.grpc_port
        assert port is not None
        admin = issued_token(pods, "admin-srv", "admin-srv-1")
        assert await echo(port, admin) == f"system:serviceaccount:{pods.namespace}:admin-srv"

        denied = await refusal(port, issued_token(pods, "data-srv", "data-srv-1"))
        assert denied.code() is grpc.StatusCode.PERMISSION_DENIED
        other = await refusal(port, issued_token(pods, "admin-srv", "admin-srv-1", "other"))
        assert other.code() is grpc.StatusCode.UNAUTHENTICATED
        assert other.details() == "caller identity: wrong audience"

        pods.delete("admin-srv-1", grace_s=0)
        # Bounded by the watch: the token itself stays valid for ten minutes.
        gone = await refused_within(lambda: echo(port, admin), WATCH_LIMIT_S)
        assert gone.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "is gone" in (gone.details() or "")
