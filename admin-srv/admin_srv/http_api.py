"""admin-srv's HTTP face: /admin/v1/..., bodies and answers in the protobuf JSON mapping.

The OpenAPI document declares each body (see admin_srv.http_schemas) and the error
statuses each route answers; the framework adds its own (micro.transport.openapi).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response

from admin_srv import http_schemas as schemas
from admin_srv import messages
from admin_srv.device_tokens import COOKIE_NAME
from admin_srv.json_body import message_json, parse_message
from admin_srv.usecases import (
    IDEMPOTENCY_HEADER,
    AuthUseCases,
    DeviceUseCases,
    UserAdminUseCases,
)
from api.admin_srv.v1 import admin_pb2
from micro.auth import bearer_token, require_principal
from micro.client.idempotency import KEY_PATTERN
from micro.paging import MAX_REQUESTED_PAGE_SIZE
from micro.transport.client_address import client_address
from micro.transport.openapi import OPTIONAL_BEARER, error_response, error_responses
from micro.transport.proto_schema import json_reply, json_request_body

PREFIX = "/admin/v1"
LOGIN_PATH = f"{PREFIX}/login"
# Paths ctx.protect() guards: any valid token, or an admin's.
SIGNED_IN_PATHS = (f"{PREFIX}/me", f"{PREFIX}/devices")
ADMIN_PATHS = (f"{PREFIX}/users",)

WRONG_CREDENTIALS = error_response(401, "Wrong user name or password (the same for both)")
PAGE_SIZE = (
    f"Users per page: 0 asks for {schemas.USERS_DEFAULT_PAGE_SIZE}, and a size above "
    f"{schemas.USERS_MAX_PAGE_SIZE} is lowered to {schemas.USERS_MAX_PAGE_SIZE} (AIP-158)"
)


def build_router(
    auth: AuthUseCases, devices: DeviceUseCases, users: UserAdminUseCases
) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["admin"])

    @router.post(
        "/login",
        summary="Log in: LoginRequest -> LoginReply",
        openapi_extra=json_request_body(schemas.LOGIN_REQUEST),
        responses={
            200: json_reply(schemas.LOGIN_REPLY),
            **error_responses(429, 503),
            401: WRONG_CREDENTIALS,
        },
    )
    async def login(
        request: Request,
        response: Response,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias=IDEMPOTENCY_HEADER,
                pattern=KEY_PATTERN,
                description=(
                    "Makes the login safe to retry: a retry with the same key (1-64 "
                    "letters, digits or -_.:) gets the session of the first attempt, "
                    "never a second one. A new key for each login."
                ),
            ),
        ] = None,
    ) -> Any:
        body = parse_message(await request.body(), admin_pb2.LoginRequest())
        device_token = request.cookies.get(COOKIE_NAME, "")
        keyed = None if idempotency_key is None else (IDEMPOTENCY_HEADER, idempotency_key)
        signed_in = await auth.login(
            body.user_name, body.password, body.platform, client_address(), device_token, keyed
        )
        # Sent back only to the login path, never readable by scripts or other sites.
        response.set_cookie(
            COOKIE_NAME,
            signed_in.device_token,
            max_age=int(signed_in.device_token_lifetime.total_seconds()),
            path=LOGIN_PATH,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return message_json(messages.login_reply(signed_in.session))

    @router.post(
        "/logout",
        summary="Revoke the refresh token and the bearer access token",
        description="The refresh token is required; the access token in the Authorization "
        "header is revoked too when sent. An unknown refresh token is no error (logging out "
        "twice is fine); the session ends whatever the bearer is, and the bearer is "
        "revoked only when it is a valid access token.",
        openapi_extra={**json_request_body(schemas.LOGOUT_REQUEST), **OPTIONAL_BEARER},
        responses={200: json_reply(schemas.LOGOUT_REPLY), **error_responses(401, 503)},
    )
    async def logout(request: Request) -> Any:
        body = parse_message(await request.body(), admin_pb2.LogoutRequest())
        access = bearer_token(request.headers.get("authorization")) or ""
        await auth.logout(body.refresh_token, access)
        return message_json(admin_pb2.LogoutReply())

    @router.post(
        "/refresh",
        summary="Exchange a refresh token for a new pair",
        openapi_extra=json_request_body(schemas.REFRESH_REQUEST),
        responses={
            200: json_reply(schemas.LOGIN_REPLY),
            **error_responses(503),
            401: error_response(401, "The refresh token is invalid, expired, revoked or spent"),
        },
    )
    async def refresh(request: Request) -> Any:
        body = parse_message(await request.body(), admin_pb2.RefreshTokenRequest())
        return message_json(messages.login_reply(await auth.refresh(body.refresh_token)))

    @router.get(
        "/me",
        summary="The caller, from its access token",
        responses={200: json_reply(schemas.USER), **error_responses(404)},
    )
    async def me() -> Any:
        return message_json(messages.user(await auth.me(require_principal())))

    @router.get(
        "/devices/{name}",
        summary="A device from device-srv",
        responses={200: json_reply(schemas.DEVICE), **error_responses(404)},
    )
    async def device(
        name: Annotated[str, Path(json_schema_extra=schemas.DEVICE_NAME)],
    ) -> Any:
        return message_json(messages.device(await devices.get(name)))

    @router.post(
        "/users",
        summary="Create a user (admins only)",
        openapi_extra=json_request_body(schemas.CREATE_USER_REQUEST),
        responses={200: json_reply(schemas.USER), **error_responses(409)},
    )
    async def create_user(request: Request) -> Any:
        body = parse_message(await request.body(), admin_pb2.CreateUserRequest())
        account = await users.create(body.user_name, body.password, body.role)
        return message_json(messages.user(account))

    @router.get(
        "/users",
        summary="List users (admins only)",
        responses={200: json_reply(schemas.LIST_USERS_REPLY)},
    )
    async def list_users(
        page_size: Annotated[
            int, Query(alias="pageSize", ge=0, le=MAX_REQUESTED_PAGE_SIZE, description=PAGE_SIZE)
        ] = 0,
        page_token: Annotated[
            str,
            Query(
                alias="pageToken",
                max_length=200,
                description="nextPageToken of the previous page; anything else is 400",
            ),
        ] = "",
    ) -> Any:
        accounts, next_token = await users.list(page_size, page_token)
        return message_json(messages.users_reply(accounts, next_token))

    return router
