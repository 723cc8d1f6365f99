"""admin-srv's HTTP face: /admin/v1/..., bodies and answers in the protobuf JSON mapping."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from admin_srv import messages
from admin_srv.json_body import message_json, parse_message
from admin_srv.usecases import AuthUseCases, DeviceUseCases, UserAdminUseCases
from api.admin_srv.v1 import admin_pb2
from micro.auth import bearer_token, require_principal

PREFIX = "/admin/v1"
# Paths ctx.protect() guards: any valid token, or an admin's.
SIGNED_IN_PATHS = (f"{PREFIX}/me", f"{PREFIX}/devices")
ADMIN_PATHS = (f"{PREFIX}/users",)


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def build_router(
    auth: AuthUseCases, devices: DeviceUseCases, users: UserAdminUseCases
) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["admin"])

    @router.post("/login", summary="Log in: LoginRequest -> LoginReply")
    async def login(request: Request) -> Any:
        body = parse_message(await request.body(), admin_pb2.LoginRequest())
        session = await auth.login(
            body.user_name, body.password, body.platform, _client_address(request)
        )
        return message_json(messages.login_reply(session))

    @router.post("/logout", summary="Revoke the refresh token and the bearer access token")
    async def logout(request: Request) -> Any:
        body = parse_message(await request.body(), admin_pb2.LogoutRequest())
        access = bearer_token(request.headers.get("authorization")) or ""
        await auth.logout(body.refresh_token, access)
        return message_json(admin_pb2.LogoutReply())

    @router.post("/refresh", summary="Exchange a refresh token for a new pair")
    async def refresh(request: Request) -> Any:
        body = parse_message(await request.body(), admin_pb2.RefreshTokenRequest())
        return message_json(messages.login_reply(await auth.refresh(body.refresh_token)))

    @router.get("/me", summary="The caller, from its access token")
    async def me() -> Any:
        return message_json(messages.user(await auth.me(require_principal())))

    @router.get("/devices/{name}", summary="A device from device-srv")
    async def device(name: str) -> Any:
        return message_json(messages.device(await devices.get(name)))

    @router.post("/users", summary="Create a user (admins only)")
    async def create_user(request: Request) -> Any:
        body = parse_message(await request.body(), admin_pb2.CreateUserRequest())
        account = await users.create(body.user_name, body.password, body.role)
        return message_json(messages.user(account))

    @router.get("/users", summary="List users (admins only)")
    async def list_users(
        page_size: Annotated[int, Query(alias="pageSize")] = 0,
        page_token: Annotated[str, Query(alias="pageToken", max_length=200)] = "",
    ) -> Any:
        accounts, next_token = await users.list(page_size, page_token)
        return message_json(messages.users_reply(accounts, next_token))

    return router
