"""The App wires the identity guard from its config: on a non-public gRPC port with
identity.mode kubernetes; the service starts while the API is unreachable and refuses
what it cannot verify; a public port asks nothing; health stays open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.app import App, ServiceContext
from micro.config.model import ServiceConfig
from micro.identity import IDENTITY_METADATA_KEY
from micro.testing.apps import config_folder, running_app
from micro.testing.processes import free_port
from micro.testing.service_tokens import Issuer, claims, sign

SERVICE = "go-micro.token-srv"
IDENTITY_ON = {"MICRO__IDENTITY__MODE": "kubernetes"}


def app_config(*, public: bool) -> dict[str, Any]:
    # Nothing listens on this port: the API is unreachable for the whole test.
    unreachable = f"http://127.0.0.1:{free_port()}"
    return {
        "server": {"grpc": {"addr": "127.0.0.1:0", "public": public}},
        "registry": {
            "type": "static",
            "k8s": {"master_url": unreachable, "namespace": "default"},
        },
        "identity": {"allow": [{"callers": ["admin-srv"], "methods": ["echo.v1.EchoService/*"]}]},
    }


def grpc_port(app: App[ServiceConfig]) -> int:
    port = app.ctx.grpc_port if app.ctx is not None else None
    assert port is not None
    return port


async def call(port: int, token: str | None = None) -> str:
    metadata = ((IDENTITY_METADATA_KEY, token),) if token else ()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = echo_pb2_grpc.EchoServiceStub(channel)
        answer = await stub.Echo(echo_pb2.EchoRequest(text="hi"), metadata=metadata)
        return str(answer.text)


async def refusal(port: int, token: str | None = None) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(port, token)
    return raised.value


async def serving(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
        return int(answer.status)


async def test_an_internal_port_starts_without_the_api_and_refuses_what_it_cannot_verify(
    tmp_path: Path, whoami: Any, issuer: Issuer, restore_logging: None
) -> None:
    async def compose(ctx: ServiceContext[ServiceConfig]) -> None:
        ctx.add_grpc_service(echo_pb2_grpc.add_EchoServiceServicer_to_server, whoami)

    folder = config_folder(tmp_path / "configs", app_config(public=False))
    async with running_app(
        SERVICE, ServiceConfig, compose, config_dir=folder, env=IDENTITY_ON
    ) as app:
        port = grpc_port(app)
        missing = await refusal(port)
        assert missing.code() is grpc.StatusCode.UNAUTHENTICATED
        assert missing.details() == "caller identity: missing x-micro-identity metadata"
        unverifiable = await refusal(port, sign(issuer, claims()))
        assert unverifiable.code() is grpc.StatusCode.UNAUTHENTICATED
        assert unverifiable.details() == "caller identity: issuer keys unavailable"
        assert await serving(port) == health_pb2.HealthCheckResponse.SERVING


async def test_a_public_port_asks_no_identity(
    tmp_path: Path, whoami: Any, restore_logging: None
) -> None:
    async def compose(ctx: ServiceContext[ServiceConfig]) -> None:
        ctx.add_grpc_service(echo_pb2_grpc.add_EchoServiceServicer_to_server, whoami)

    folder = config_folder(tmp_path / "configs", app_config(public=True))
    async with running_app(
        SERVICE, ServiceConfig, compose, config_dir=folder, env=IDENTITY_ON
    ) as app:
        assert await call(grpc_port(app)) == ""  # served, with no caller


async def test_test_apps_keep_identity_off(
    tmp_path: Path, whoami: Any, restore_logging: None
) -> None:
    async def compose(ctx: ServiceContext[ServiceConfig]) -> None:
        ctx.add_grpc_service(echo_pb2_grpc.add_EchoServiceServicer_to_server, whoami)

    config = {**app_config(public=False), "identity": {"mode": "kubernetes"}}
    folder = config_folder(tmp_path / "configs", config)
    async with running_app(SERVICE, ServiceConfig, compose, config_dir=folder) as app:
        assert app.ctx is not None
        assert app.ctx.config.current.identity.mode == "off"
        assert await call(grpc_port(app)) == ""
