"""admin-srv's parts built from its config and three stubs, in one place: the service's
composition root and the tests assemble the same thing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from admin_srv import grpc_api, http_api
from admin_srv.config import AdminAuthConfig, LoginLimitConfig
from admin_srv.login_limit import FailedLoginLimiter
from admin_srv.usecases import AuthUseCases, DeviceUseCases, UserAdminUseCases
from admin_srv.verifier import build_verifier
from api.admin_srv.v1 import admin_pb2_grpc
from micro.auth import TokenVerifier

if TYPE_CHECKING:
    from api.device_srv.v1.device_pb2_grpc import DevSvcAsyncStub
    from api.token_srv.v1.token_pb2_grpc import TokenServiceAsyncStub
    from api.user_srv.v1.user_pb2_grpc import UserServiceAsyncStub

GrpcService = tuple[Callable[[Any, Any], None], Any, str]
ADMIN_ROLES = ("admin",)


@dataclass(frozen=True)
class AdminParts:
    router: APIRouter
    grpc_services: list[GrpcService]
    verifier: TokenVerifier
    # (prefix, roles): HTTP paths and gRPC names that need a token; no roles: any user.
    protected: list[tuple[str, tuple[str, ...]]]


def build_admin(
    auth_cfg: AdminAuthConfig,
    login_limit: Callable[[], LoginLimitConfig],
    users: UserServiceAsyncStub,
    tokens: TokenServiceAsyncStub,
    devices: DevSvcAsyncStub,
) -> AdminParts:
    auth = AuthUseCases(users, tokens, FailedLoginLimiter(login_limit))
    device_lookup = DeviceUseCases(devices)
    user_admin = UserAdminUseCases(users)
    signed_in = [*http_api.SIGNED_IN_PATHS, *grpc_api.SIGNED_IN_METHODS]
    admins_only = [*http_api.ADMIN_PATHS, *grpc_api.ADMIN_METHODS]
    return AdminParts(
        router=http_api.build_router(auth, device_lookup, user_admin),
        grpc_services=[
            (
                admin_pb2_grpc.add_AuthenticationServiceServicer_to_server,
                grpc_api.AuthenticationServicer(auth),
                grpc_api.AUTHENTICATION_SERVICE,
            ),
            (
                admin_pb2_grpc.add_DeviceServiceServicer_to_server,
                grpc_api.DeviceServicer(device_lookup),
                grpc_api.DEVICE_SERVICE,
            ),
            (
                admin_pb2_grpc.add_UserServiceServicer_to_server,
                grpc_api.UserServicer(user_admin),
                grpc_api.USER_SERVICE,
            ),
        ],
        verifier=build_verifier(auth_cfg, tokens),
        protected=[(p, ()) for p in signed_in] + [(p, ADMIN_ROLES) for p in admins_only],
    )
