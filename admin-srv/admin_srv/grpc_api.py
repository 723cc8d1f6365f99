"""admin-srv's gRPC face: admin_srv.v1 AuthenticationService, DeviceService, UserService."""

from __future__ import annotations

from typing import Any

from admin_srv import messages
from admin_srv.device_tokens import METADATA_KEY
from admin_srv.usecases import (
    IDEMPOTENCY_METADATA,
    AuthUseCases,
    DeviceUseCases,
    UserAdminUseCases,
)
from api.admin_srv.v1 import admin_pb2, admin_pb2_grpc
from micro.auth import bearer_token, require_principal
from micro.servicer import Context, Servicer
from micro.transport.client_address import client_address
from micro.transport.grpc import AddToServer

_SERVICES = admin_pb2.DESCRIPTOR.services_by_name
AUTHENTICATION_SERVICE = _SERVICES["AuthenticationService"].full_name
DEVICE_SERVICE = _SERVICES["DeviceService"].full_name
USER_SERVICE = _SERVICES["UserService"].full_name
# Methods ctx.protect() guards: any valid token, or an admin's.
SIGNED_IN_METHODS = (f"/{AUTHENTICATION_SERVICE}/GetMe", DEVICE_SERVICE)
ADMIN_METHODS = (USER_SERVICE,)


def _metadata(context: Context, wanted: str) -> str:
    """The first text value of a request metadata key, "" when absent."""
    for key, value in context.invocation_metadata() or ():
        if key == wanted and isinstance(value, str):
            return value
    return ""


def _idempotency_key(context: Context) -> tuple[str, str] | None:
    """The client's key of a retryable login, when it sent one (any value: checked by
    the use case)."""
    values = [v for k, v in context.invocation_metadata() or () if k == IDEMPOTENCY_METADATA]
    if not values:
        return None
    key = values[0] if len(values) == 1 and isinstance(values[0], str) else ""
    return IDEMPOTENCY_METADATA, key


def _authorization(context: Context) -> str:
    return bearer_token(_metadata(context, "authorization")) or ""


class AuthenticationServicer(Servicer[AuthUseCases], admin_pb2_grpc.AuthenticationServiceServicer):
    async def Login(
        self, request: admin_pb2.LoginRequest, context: Context
    ) -> admin_pb2.LoginReply:
        signed_in = await self.usecases.login(
            request.user_name,
            request.password,
            request.platform,
            client_address(),
            _metadata(context, METADATA_KEY),
            _idempotency_key(context),
        )
        await context.send_initial_metadata(((METADATA_KEY, signed_in.device_token),))
        return messages.login_reply(signed_in.session)

    async def Logout(
        self, request: admin_pb2.LogoutRequest, context: Context
    ) -> admin_pb2.LogoutReply:
        await self.usecases.logout(request.refresh_token, _authorization(context))
        return admin_pb2.LogoutReply()

    async def RefreshToken(
        self, request: admin_pb2.RefreshTokenRequest, context: Context
    ) -> admin_pb2.LoginReply:
        return messages.login_reply(await self.usecases.refresh(request.refresh_token))

    async def GetMe(self, request: admin_pb2.GetMeRequest, context: Context) -> admin_pb2.User:
        return messages.user(await self.usecases.me(require_principal()))


class DeviceServicer(Servicer[DeviceUseCases], admin_pb2_grpc.DeviceServiceServicer):
    async def GetDevice(
        self, request: admin_pb2.GetDeviceRequest, context: Context
    ) -> admin_pb2.Device:
        return messages.device(await self.usecases.get(request.name))


class UserServicer(Servicer[UserAdminUseCases], admin_pb2_grpc.UserServiceServicer):
    async def CreateUser(
        self, request: admin_pb2.CreateUserRequest, context: Context
    ) -> admin_pb2.User:
        account = await self.usecases.create(request.user_name, request.password, request.role)
        return messages.user(account)

    async def ListUsers(
        self, request: admin_pb2.ListUsersRequest, context: Context
    ) -> admin_pb2.ListUsersReply:
        accounts, next_token = await self.usecases.list(request.page_size, request.page_token)
        return messages.users_reply(accounts, next_token)


def services(
    auth: AuthUseCases, devices: DeviceUseCases, users: UserAdminUseCases
) -> list[tuple[AddToServer, Any]]:
    """(add_to_server, servicer) of each admin_srv.v1 service."""
    return [
        (admin_pb2_grpc.add_AuthenticationServiceServicer_to_server, AuthenticationServicer(auth)),
        (admin_pb2_grpc.add_DeviceServiceServicer_to_server, DeviceServicer(devices)),
        (admin_pb2_grpc.add_UserServiceServicer_to_server, UserServicer(users)),
    ]
