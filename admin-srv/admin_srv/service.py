"""Composition root of admin-srv: adapters of user-srv, token-srv and device-srv, the use
cases, and the same operations on HTTP :8080 and gRPC :9090, wired to the framework."""

from __future__ import annotations

import asyncio
import contextlib

from admin_srv import grpc_api, http_api
from admin_srv.adapters import GrpcAccounts, GrpcDeviceDirectory, GrpcTokens
from admin_srv.config import AdminSrvConfig
from admin_srv.device_tokens import DeviceTokenSigner
from admin_srv.refusals import RateRefusals
from admin_srv.usecases import AuthUseCases, DeviceUseCases, UserAdminUseCases
from admin_srv.verifier import build_verifier
from api.device_srv.v1.device_pb2_grpc import DevSvcStub
from api.token_srv.v1.token_pb2_grpc import TokenServiceStub
from api.user_srv.v1.user_pb2_grpc import UserServiceStub
from micro.app import ServiceContext, run
from micro.registry.names import package_registry_name
from micro.revocation import RevocationFeed, RevokedTokens

NAME = package_registry_name(__name__)  # go-micro.<folder name>
SNAPSHOT_WAIT_SECONDS = 2.0


async def compose(ctx: ServiceContext[AdminSrvConfig]) -> None:
    cfg = ctx.config.current
    names = cfg.upstreams
    accounts = GrpcAccounts(ctx.client(UserServiceStub, names.user_service))
    tokens = GrpcTokens(ctx.client(TokenServiceStub, names.token_service))
    directory = GrpcDeviceDirectory(ctx.client(DevSvcStub, names.device_service))
    signer = DeviceTokenSigner(ctx.config.view(lambda c: c.device_tokens))
    auth = AuthUseCases(accounts, tokens, signer, RateRefusals())
    devices, users = DeviceUseCases(directory), UserAdminUseCases(accounts)
    # Logouts reach the verifier through token-srv's feed, with no call per request.
    revoked = RevokedTokens()
    follow_revocations(ctx, RevocationFeed(tokens.revocations, revoked))
    # The auth section is read once (a verifier keeps its JWKS cache); restart to change it.
    ctx.set_verifier(build_verifier(cfg.auth, tokens, revoked))
    ctx.include_router(http_api.build_router(auth, devices, users))
    for add_to_server, servicer in grpc_api.services(auth, devices, users):
        ctx.add_grpc_service(add_to_server, servicer)
    for prefix in (*http_api.SIGNED_IN_PATHS, *grpc_api.SIGNED_IN_METHODS):
        ctx.protect(prefix)
    for prefix in (*http_api.ADMIN_PATHS, *grpc_api.ADMIN_METHODS):
        ctx.protect(prefix, roles=("admin",))


def follow_revocations(ctx: ServiceContext[AdminSrvConfig], feed: RevocationFeed) -> None:
    """The feed runs from startup to shutdown; a snapshot comes first, so a restart knows
    the revocations made before it. Startup waits a bounded time for it (before the pod
    registers), then goes on: the feed keeps trying."""
    tasks: list[asyncio.Task[None]] = []

    async def start() -> None:
        tasks.append(asyncio.create_task(feed.run(), name="revocation feed"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(feed.synced.wait(), SNAPSHOT_WAIT_SECONDS)

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    ctx.on_startup(start)
    ctx.on_shutdown(stop)


def main() -> None:
    run(name=NAME, config_model=AdminSrvConfig, compose=compose)
