"""What admin-srv does, for HTTP and gRPC alike: the login flow, the caller, devices, users.

Every operation asks user-srv, token-srv or device-srv through an adapter (adapters.py);
their errors pass on as ServiceErrors with their code and field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import grpc

from admin_srv.device_tokens import DeviceTokenSigner
from admin_srv.refusals import RateRefusals
from micro.auth import Principal
from micro.client.idempotency import check_key, serving_key
from micro.errors import ServiceError, invalid_argument, unauthenticated

ROLES = ("user", "admin")
# Where a login's idempotency key comes from: the HTTP header and the gRPC metadata key.
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_METADATA = "idempotency-key"


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
class SignedIn:
    """A login's session and the device token the client keeps for its next login."""

    session: Session
    device_token: str
    device_token_lifetime: timedelta


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
    async def verify_password(
        self, user_name: str, password: str, client_key: str, client_address: str
    ) -> Account:
        """user-srv budgets the attempt on client_key (a device id, "" for unknown)."""
        ...

    async def get(self, user_id: str) -> Account: ...
    async def create(self, user_name: str, password: str, role: str) -> Account: ...
    async def list(self, page_size: int, page_token: str) -> tuple[list[Account], str]: ...


class Tokens(Protocol):
    async def issue(self, account: Account, platform: int) -> Session: ...
    async def refresh(self, refresh_token: str) -> tuple[Session, str]: ...
    async def revoke(self, refresh_token: str, access_token: str) -> None: ...


class DeviceDirectory(Protocol):
    async def get(self, name: str) -> DeviceState: ...


class AuthUseCases:
    def __init__(
        self,
        accounts: Accounts,
        tokens: Tokens,
        devices: DeviceTokenSigner,
        refusals: RateRefusals,
    ) -> None:
        self._accounts = accounts
        self._tokens = tokens
        self._devices = devices
        self._refusals = refusals

    async def login(
        self,
        user_name: str,
        password: str,
        platform: int,
        client_address: str,
        device_token: str = "",
        idempotency_key: tuple[str, str] | None = None,
    ) -> SignedIn:
        """user-srv limits the attempts (budgets in its database, shared by every replica);
        a valid device token for this account gets the device's own budget. A rate-limit
        refusal is remembered for its triple until it ends, so a flood costs no calls.

        With the client's idempotency key ((where it came from, the key)), the calls to
        token-srv derive their keys from it and the account's name, so a retried login
        (on any replica) gets the session its first attempt started, never a second one."""
        if not user_name:
            raise invalid_argument("userName", "must not be empty")
        if idempotency_key is None:
            return await self._login(user_name, password, platform, client_address, device_token)
        source, key = idempotency_key
        check_key(key, source)
        # The account's name in the derived keys: two users sending one key never meet.
        with serving_key(f"login\n{user_name}\n{key}"):
            return await self._login(user_name, password, platform, client_address, device_token)

    async def _login(
        self,
        user_name: str,
        password: str,
        platform: int,
        client_address: str,
        device_token: str,
    ) -> SignedIn:
        device_id = self._devices.device_id(device_token, user_name)
        key = (user_name, device_id, client_address)
        self._refusals.check(key)
        asked_at = self._refusals.now()
        try:
            account = await self._accounts.verify_password(
                user_name, password, device_id, client_address
            )
        except ServiceError as error:
            self._refusals.remember(key, error, asked_at)
            raise
        session = await self._tokens.issue(account, platform)
        token = self._devices.issue(user_name, device_id)
        return SignedIn(session, token, self._devices.lifetime)

    async def refresh(self, refresh_token: str) -> Session:
        if not refresh_token:
            raise invalid_argument("refreshToken", "must not be empty")
        session, role = await self._tokens.refresh(refresh_token)
        # The role is re-read here, not in token-srv: admin-srv already asks user-srv, and
        # token-srv stays free of a call to it. A changed or deleted account ends the
        # session: its next login carries the current role.
        try:
            current = (await self._accounts.get(session.user_id)).role
        except ServiceError as error:
            if error.code is not grpc.StatusCode.NOT_FOUND:
                raise
            current = None
        if current != role:
            await self._tokens.revoke(session.refresh_token, session.access_token)
            raise unauthenticated("refreshToken", "the account changed; log in again")
        return session

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
