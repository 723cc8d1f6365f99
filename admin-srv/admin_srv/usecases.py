"""What admin-srv does, for HTTP and gRPC alike: the login flow, the caller, devices, users.

Every operation is a call to user-srv, token-srv or device-srv through their stubs;
their errors pass on with their code and field (ServiceError.from_rpc_error).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

import grpc

from admin_srv.login_limit import FailedLoginLimiter
from api.device_srv.v1 import device_pb2
from api.token_srv.v1 import token_pb2
from api.user_srv.v1 import user_pb2
from micro.auth import Principal
from micro.errors import ServiceError, invalid_argument

if TYPE_CHECKING:
    from api.device_srv.v1.device_pb2_grpc import DevSvcAsyncStub
    from api.token_srv.v1.token_pb2_grpc import TokenServiceAsyncStub
    from api.user_srv.v1.user_pb2_grpc import UserServiceAsyncStub

T = TypeVar("T")

ROLE_NAMES = {user_pb2.USER_ROLE_USER: "user", user_pb2.USER_ROLE_ADMIN: "admin"}
ROLE_VALUES = {
    "": user_pb2.USER_ROLE_USER,
    "user": user_pb2.USER_ROLE_USER,
    "admin": user_pb2.USER_ROLE_ADMIN,
}


@dataclass(frozen=True)
class Session:
    """A logged-in user and the token pair issued for it."""

    user_id: str
    user_name: str
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


@dataclass(frozen=True)
class Account:
    id: str
    user_name: str
    role: str
    create_time: datetime | None


@dataclass(frozen=True)
class DeviceState:
    name: str
    active: bool


async def upstream(call: Awaitable[T]) -> T:
    """Await a downstream call; its failure becomes the ServiceError it stands for."""
    try:
        return await call
    except grpc.RpcError as error:
        raise ServiceError.from_rpc_error(error) from None


def _account(user: user_pb2.User) -> Account:
    return Account(
        id=user.id,
        user_name=user.user_name,
        role=ROLE_NAMES.get(user.role, "user"),
        create_time=user.create_time.ToDatetime() if user.HasField("create_time") else None,
    )


def _session(user_id: str, user_name: str, pair: token_pb2.TokenPair) -> Session:
    return Session(
        user_id=user_id,
        user_name=user_name,
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        token_type=pair.token_type,
        expires_in=pair.expires_in,
    )


class AuthUseCases:
    def __init__(
        self,
        users: UserServiceAsyncStub,
        tokens: TokenServiceAsyncStub,
        limiter: FailedLoginLimiter,
    ) -> None:
        self._users = users
        self._tokens = tokens
        self._limiter = limiter

    async def login(
        self, user_name: str, password: str, platform: int, client_address: str
    ) -> Session:
        if not user_name:
            raise invalid_argument("userName", "must not be empty")
        self._limiter.check(user_name, client_address)
        try:
            verified = await upstream(
                self._users.VerifyPassword(
                    user_pb2.VerifyPasswordRequest(user_name=user_name, password=password)
                )
            )
        except ServiceError as error:
            if error.code is grpc.StatusCode.UNAUTHENTICATED:
                self._limiter.record_failure(user_name, client_address)
            raise
        self._limiter.clear_user(user_name)
        user = verified.user
        generated = await upstream(
            self._tokens.GenerateToken(
                token_pb2.GenerateTokenRequest(
                    user_id=user.id,
                    user_name=user.user_name,
                    platform=platform,  # type: ignore[arg-type]
                    role=ROLE_NAMES.get(user.role, "user"),
                )
            )
        )
        return _session(user.id, user.user_name, generated.token)

    async def refresh(self, refresh_token: str) -> Session:
        if not refresh_token:
            raise invalid_argument("refreshToken", "must not be empty")
        reply = await upstream(
            self._tokens.RefreshToken(token_pb2.RefreshTokenRequest(refresh_token=refresh_token))
        )
        return _session(reply.user_id, reply.user_name, reply.token)

    async def logout(self, refresh_token: str, access_token: str) -> None:
        """End the refresh token's session and, when given, revoke the access token; a
        logout without the refresh token would leave the session alive."""
        if not refresh_token:
            raise invalid_argument("refreshToken", "must not be empty")
        await upstream(
            self._tokens.RevokeToken(
                token_pb2.RevokeTokenRequest(refresh_token=refresh_token, access_token=access_token)
            )
        )

    async def me(self, principal: Principal) -> Account:
        reply = await upstream(self._users.GetUser(user_pb2.GetUserRequest(id=principal.user_id)))
        return _account(reply.user)


class DeviceUseCases:
    def __init__(self, devices: DevSvcAsyncStub) -> None:
        self._devices = devices

    async def get(self, name: str) -> DeviceState:
        device = await upstream(self._devices.Get(device_pb2.DeviceName(name=name)))
        return DeviceState(device.name, device.active)


class UserAdminUseCases:
    def __init__(self, users: UserServiceAsyncStub) -> None:
        self._users = users

    async def create(self, user_name: str, password: str, role: str) -> Account:
        value = ROLE_VALUES.get(role)
        if value is None:
            raise invalid_argument("role", "must be user or admin")
        reply = await upstream(
            self._users.CreateUser(
                user_pb2.CreateUserRequest(user_name=user_name, password=password, role=value)
            )
        )
        return _account(reply.user)

    async def list(self, page_size: int, page_token: str) -> tuple[list[Account], str]:
        reply = await upstream(
            self._users.ListUsers(
                user_pb2.ListUsersRequest(page_size=page_size, page_token=page_token)
            )
        )
        return [_account(u) for u in reply.users], reply.next_page_token
