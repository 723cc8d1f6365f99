"""Composition root of admin-srv: stubs of user-srv, token-srv and device-srv, the use
cases, and the same operations on HTTP :8080 and gRPC :9090, wired to the framework."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from admin_srv.config import AdminSrvConfig
from admin_srv.wiring import build_admin
from api.device_srv.v1.device_pb2_grpc import DevSvcStub
from api.token_srv.v1.token_pb2_grpc import TokenServiceStub
from api.user_srv.v1.user_pb2_grpc import UserServiceStub
from micro.app import ServiceContext, run

if TYPE_CHECKING:
    from api.device_srv.v1.device_pb2_grpc import DevSvcAsyncStub
    from api.token_srv.v1.token_pb2_grpc import TokenServiceAsyncStub
    from api.user_srv.v1.user_pb2_grpc import UserServiceAsyncStub

NAME = "go-micro.admin-srv"


async def compose(ctx: ServiceContext[AdminSrvConfig]) -> None:
    cfg = ctx.config.current
    upstreams = cfg.upstreams
    # The auth section is read once (a verifier keeps its JWKS cache); restart to change it.
    parts = build_admin(
        cfg.auth,
        lambda: ctx.config.current.login_limit,  # limits follow config changes at once
        # The generated stubs are typed for sync channels; on the aio channels of
        # ctx.client they are the Async variants.
        cast("UserServiceAsyncStub", ctx.client(upstreams.user_service, UserServiceStub)),
        cast("TokenServiceAsyncStub", ctx.client(upstreams.token_service, TokenServiceStub)),
        cast("DevSvcAsyncStub", ctx.client(upstreams.device_service, DevSvcStub)),
    )
    ctx.set_verifier(parts.verifier)
    for prefix, roles in parts.protected:
        ctx.protect(prefix, roles=roles)
    ctx.include_router(parts.router)
    for add_to_server, servicer, full_name in parts.grpc_services:
        ctx.add_grpc_service(add_to_server, servicer, full_name)


def main() -> None:
    run(name=NAME, config_model=AdminSrvConfig, compose=compose)
