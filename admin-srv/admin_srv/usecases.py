"""What admin-srv does, for HTTP and gRPC alike: the login flow, the caller, devices, users.

Every operation asks user-srv, token-srv or device-srv through an adapter (adapters.py);
their errors pass on as ServiceErrors with their code and field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import grpc

from admin_srv.login_limit import FailedLoginLimiter
from micro.auth import Principal
from micro.errors import ServiceError, invalid_argument

ROLES = ("user", "admin")


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


class Accounts(Protocol):
    async def verify_password(self, user_name: str, password: str) -> Account: ...
    async def get(self, user_id: str) -> Account: ...
    async def create(self, user_name: str, password: str, role: str) -> Account: ...
    async def list(self, page_size: int, page_token: str) -> tuple[list[Account], str]: ...


class Tokens(Protocol):
    async def issue(self, account: Account, platform: int) -> Session: ...
    async def refresh(self, refresh_token: str) -> Session: ...
    async def revoke(self, refresh_token: str, access_token: str) -> None: ...


class DeviceDirectory(Protocol):
    async def get(self, name: str) -> DeviceState: ...


class AuthUseCases:
    def __init__(self, accounts: Accounts, tokens: Tokens, limiter: FailedLoginLimiter) -> None:
        self._accounts = accounts
        self._tokens = tokens
        self._limiter = limiter

    async def login(
        self, user_name: str, password: str, platform: int, client_address: str
    ) -> Session:
        if not user_name:
            raise invalid_argument("userName", "must not be empty")
        self._limiter.check(user_name, client_address)
        try:
            account = await self._accounts.verify_password(user_name, password)
        except ServiceError as error:
            if error.code is grpc.StatusCode.UNAUTHENTICATED:
                self._limiter.record_failure(user_name, client_address)
            raise
        self._limiter.clear_user(user_name)
        return await self._tokens.issue(account, platform)

    async def refresh(self, refresh_token: str) -> Session:
        if not refresh_token:
            raise invalid_argument("refreshToken", "must not be empty")
        return await self._tokens.refresh(refresh_token)

    async def logout(self, refresh_token: str, access_token: str) -> None:
        """End the refresh token's session and, when given, revoke the access token; a
        logout without the refresh token would leave the session alive."""
        if not refresh_token:
            raise invalid_argument("refreshToken", "must not be empty")
        await self._tokens.revoke(refresh_token, access_token)

    async def me(self, principal: Principal) -> Account:
        return await self._accounts.get(principal.user_id)


class DeviceUseCases:
    def __init__(self, devices: DeviceDirectory) -> None:
        self._devices = devices

    async def get(self, name: str) -> DeviceState:
        return await self._devices.get(name)


class UserAdminUseCases:
    def __init__(self, accounts: Accounts) -> None:
        self._accounts = accounts

    async def create(self, user_name: str, password: str, role: str) -> Account:
        if role and role not in ROLES:  # empty: a plain user
            raise invalid_argument("role", "must be user or admin")
        return await self._accounts.create(user_name, password, role)

    async def list(self, page_size: int, page_token: str) -> tuple[list[Account], str]:
        return await self._accounts.list(page_size, page_token)
