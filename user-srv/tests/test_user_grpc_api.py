"""user-srv through its real gRPC server and a real SQLite file."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest

from api.user_srv.v1 import user_pb2
from micro.errors import ServiceError

if TYPE_CHECKING:
    from api.user_srv.v1.user_pb2_grpc import UserServiceAsyncStub


async def rpc_error(call: object) -> ServiceError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return ServiceError.from_rpc_error(caught.value)


async def test_create_then_verify_over_grpc(user_stub: UserServiceAsyncStub) -> None:
    created = await user_stub.CreateUser(
        user_pb2.CreateUserRequest(user_name="thangn", password="123456")
    )

    verified = await user_stub.VerifyPassword(
        user_pb2.VerifyPasswordRequest(user_name="thangn", password="123456")
    )

    assert created.user.id == "1"
    assert verified.user.user_name == "thangn"
    assert verified.user.role == user_pb2.USER_ROLE_USER
    assert verified.user.create_time.seconds > 0


async def test_unknown_user_and_wrong_password_look_alike(
    user_stub: UserServiceAsyncStub,
) -> None:
    await user_stub.CreateUser(user_pb2.CreateUserRequest(user_name="thangn", password="123456"))

    wrong = await rpc_error(
        user_stub.VerifyPassword(user_pb2.VerifyPasswordRequest(user_name="thangn", password="x"))
    )
    unknown = await rpc_error(
        user_stub.VerifyPassword(user_pb2.VerifyPasswordRequest(user_name="ghost", password="x"))
    )

    assert (wrong.code, wrong.message) == (unknown.code, unknown.message)
    assert wrong.code is grpc.StatusCode.UNAUTHENTICATED


async def test_duplicate_and_invalid_users_are_refused_with_fields(
    user_stub: UserServiceAsyncStub,
) -> None:
    await user_stub.CreateUser(user_pb2.CreateUserRequest(user_name="alice", password="123456"))

    duplicate = await rpc_error(
        user_stub.CreateUser(user_pb2.CreateUserRequest(user_name="alice", password="123456"))
    )
    unicode_name = await rpc_error(
        user_stub.CreateUser(user_pb2.CreateUserRequest(user_name="ålice", password="123456"))
    )
    short_password = await rpc_error(
        user_stub.CreateUser(user_pb2.CreateUserRequest(user_name="bob", password="123"))
    )

    assert duplicate.code is grpc.StatusCode.ALREADY_EXISTS
    assert (unicode_name.code, unicode_name.field) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "userName",
    )
    assert "letters, digits" in unicode_name.message
    assert short_password.field == "password"


async def test_get_user_by_either_key(user_stub: UserServiceAsyncStub) -> None:
    await user_stub.CreateUser(
        user_pb2.CreateUserRequest(
            user_name="root", password="rootpass", role=user_pb2.USER_ROLE_ADMIN
        )
    )

    by_id = await user_stub.GetUser(user_pb2.GetUserRequest(id="1"))
    by_name = await user_stub.GetUser(user_pb2.GetUserRequest(user_name="root"))
    neither = await rpc_error(user_stub.GetUser(user_pb2.GetUserRequest()))
    missing = await rpc_error(user_stub.GetUser(user_pb2.GetUserRequest(id="42")))

    assert by_id.user == by_name.user
    assert by_id.user.role == user_pb2.USER_ROLE_ADMIN
    assert neither.code is grpc.StatusCode.INVALID_ARGUMENT
    assert missing.code is grpc.StatusCode.NOT_FOUND


async def test_list_users_pages_over_grpc(user_stub: UserServiceAsyncStub) -> None:
    for i in range(3):
        await user_stub.CreateUser(
            user_pb2.CreateUserRequest(user_name=f"u{i}", password="password")
        )

    first = await user_stub.ListUsers(user_pb2.ListUsersRequest(page_size=2))
    second = await user_stub.ListUsers(
        user_pb2.ListUsersRequest(page_size=2, page_token=first.next_page_token)
    )

    assert [u.user_name for u in first.users] == ["u0", "u1"]
    assert [u.user_name for u in second.users] == ["u2"]
    assert second.next_page_token == ""
