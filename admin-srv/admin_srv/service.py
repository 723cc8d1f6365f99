"""Composition root of admin-srv: adapters of user-srv, token-srv and device-srv, the use
cases, and the same operations on HTTP :8080 and gRPC :9090, wired to the framework."""

from __future__ import annotations

from admin_srv import grpc_api, http_api
from admin_srv.adapters import GrpcAccounts, GrpcDeviceDirectory, GrpcTokens
from admin_srv.config import AdminSrvConfig
from admin_srv.device_tokens import DeviceTokenSigner
from admin_srv.usecases import AuthUseCases, DeviceUseCases, UserAdminUseCases
from admin_srv.verifier import build_verifier
from api.device_srv.v1.device_pb2_grpc import DevSvcStub
from api.token_srv.v1.token_pb2_grpc import TokenServiceStub
from api.user_srv.v1.user_pb2_grpc import UserServiceStub
from micro.app import ServiceContext, run
from micro.registry.names import package_registry_name

NAME = package_registry_name(__name__)  # go-micro.<folder name>


async def compose(ctx: ServiceContext[AdminSrvConfig]) -> None:
    cfg = ctx.config.current
    names = cfg.upstreams
    accounts = GrpcAccounts(ctx.client(UserServiceStub, names.user_service))
    tokens = GrpcTokens(ctx.client(TokenServiceStub, names.token_service))
    directory = GrpcDeviceDirectory(ctx.client(DevSvcStub, names.device_service))
    signer = DeviceTokenSigner(ctx.config.view(lambda c: c.device_tokens))
    auth = AuthUseCases(accounts, tokens, signer)
    devices, users = DeviceUseCases(directory), UserAdminUseCases(accounts)
    # The auth section is read once (a verifier keeps its JWKS cache); restart to change it.
    ctx.set_verifier(build_verifier(cfg.auth, tokens))
    ctx.include_router(http_api.build_router(auth, devices, users))
    for add_to_server, servicer in grpc_api.services(auth, devices, users):
        ctx.add_grpc_service(add_to_server, servicer)
    for prefix in (*http_api.SIGNED_IN_PATHS, *grpc_api.SIGNED_IN_METHODS):
        ctx.protect(prefix)
    for prefix in (*http_api.ADMIN_PATHS, *grpc_api.ADMIN_METHODS):
        ctx.protect(prefix, roles=("admin",))


def main() -> None:
    run(name=NAME, config_model=AdminSrvConfig, compose=compose)
