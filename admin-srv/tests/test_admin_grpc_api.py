"""admin-srv's gRPC API (admin_srv.v1) through its real server, with real backends."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from api.admin_srv.v1 import admin_pb2
from micro.errors import ServiceError

from .conftest import Admin


async def rpc_error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def test_login_me_and_device_over_grpc(admin: Admin) -> None:
    reply = await admin.auth.Login(admin_pb2.LoginRequest(user_name="thangn", password="123456"))

    me = await admin.auth.GetMe(admin_pb2.GetMeRequest(), metadata=bearer(reply.token))
    device = await admin.device.GetDevice(
        admin_pb2.GetDeviceRequest(name="device1"), metadata=bearer(reply.token)
    )
    anonymous = await rpc_error(admin.auth.GetMe(admin_pb2.GetMeRequest()))
    missing = await rpc_error(
        admin.device.GetDevice(
            admin_pb2.GetDeviceRequest(name="nope"), metadata=bearer(reply.token)
        )
    )

    assert (reply.id, reply.user_name, reply.token_type) == ("1", "thangn", "Bearer")
    assert (me.id, me.user_name, me.role) == ("1", "thangn", "user")
    assert (device.name, device.active) == ("device1", True)
    assert anonymous.code() is grpc.StatusCode.UNAUTHENTICATED
    assert missing.code() is grpc.StatusCode.NOT_FOUND


async def test_invalid_login_names_the_field_over_grpc(admin: Admin) -> None:
    error = await rpc_error(
        admin.auth.Login(admin_pb2.LoginRequest(user_name="thắng", password="123456"))
    )

    mapped = ServiceError.from_rpc_error(error)
    assert (mapped.code, mapped.field) == (grpc.StatusCode.INVALID_ARGUMENT, "userName")


async def test_failed_logins_exhaust_with_a_retry_after_trailer(admin: Admin) -> None:
    wrong = admin_pb2.LoginRequest(user_name="root", password="wrong-password")
    for _ in range(3):
        assert (await rpc_error(admin.auth.Login(wrong))).code() is grpc.StatusCode.UNAUTHENTICATED

    throttled = await rpc_error(admin.auth.Login(wrong))

    assert throttled.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    # grpc.aio answers (key, value) tuples, whatever the stubs say.
    trailers: Any = throttled.trailing_metadata()
    assert int(dict(trailers)["retry-after"]) >= 1


async def test_user_service_is_for_admins_only_over_grpc(admin: Admin) -> None:
    user = await admin.auth.Login(admin_pb2.LoginRequest(user_name="thangn", password="123456"))
    root = await admin.auth.Login(admin_pb2.LoginRequest(user_name="root", password="rootpass"))
    request = admin_pb2.CreateUserRequest(user_name="erin", password="erinpass", role="admin")

    denied = await rpc_error(admin.user.CreateUser(request, metadata=bearer(user.token)))
    created = await admin.user.CreateUser(request, metadata=bearer(root.token))
    listed = await admin.user.ListUsers(admin_pb2.ListUsersRequest(), metadata=bearer(root.token))

    assert denied.code() is grpc.StatusCode.PERMISSION_DENIED
    assert (created.user_name, created.role) == ("erin", "admin")
    assert [u.user_name for u in listed.users] == ["thangn", "root", "erin"]


async def test_refresh_and_logout_over_grpc(admin: Admin) -> None:
    reply = await admin.auth.Login(admin_pb2.LoginRequest(user_name="thangn", password="123456"))

    refreshed = await admin.auth.RefreshToken(
        admin_pb2.RefreshTokenRequest(refresh_token=reply.refresh_token)
    )
    await admin.auth.Logout(
        admin_pb2.LogoutRequest(refresh_token=refreshed.refresh_token),
        metadata=bearer(refreshed.token),
    )
    after = await rpc_error(
        admin.auth.RefreshToken(
            admin_pb2.RefreshTokenRequest(refresh_token=refreshed.refresh_token)
        )
    )

    assert refreshed.user_name == "thangn"
    assert after.code() is grpc.StatusCode.UNAUTHENTICATED
