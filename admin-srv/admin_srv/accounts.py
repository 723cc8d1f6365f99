"""Accounts over gRPC: user-srv's UserService, found through discovery."""

from __future__ import annotations

from admin_srv.usecases import Account
from api.user_srv.v1 import user_pb2, user_pb2_grpc
from micro.client.reply import reply

ROLE_NAMES = {user_pb2.USER_ROLE_USER: "user", user_pb2.USER_ROLE_ADMIN: "admin"}
# An empty role is a plain user, as user-srv has it.
ROLE_VALUES = {"": user_pb2.USER_ROLE_USER, **{name: v for v, name in ROLE_NAMES.items()}}


def _account(user: user_pb2.User) -> Account:
    return Account(
        id=user.id,
        user_name=user.user_name,
        role=ROLE_NAMES.get(user.role, "user"),
        create_time=user.create_time.ToDatetime() if user.HasField("create_time") else None,
    )


class GrpcAccounts:
    def __init__(self, stub: user_pb2_grpc.UserServiceAsyncStub) -> None:
        self._stub = stub

    async def verify_password(self, user_name: str, password: str) -> Account:
        request = user_pb2.VerifyPasswordRequest(user_name=user_name, password=password)
        return _account((await reply(self._stub.VerifyPassword(request))).user)

    async def get(self, user_id: str) -> Account:
        return _account((await reply(self._stub.GetUser(user_pb2.GetUserRequest(id=user_id)))).user)

    async def create(self, user_name: str, password: str, role: str) -> Account:
        request = user_pb2.CreateUserRequest(
            user_name=user_name, password=password, role=ROLE_VALUES[role]
        )
        return _account((await reply(self._stub.CreateUser(request))).user)

    async def list(self, page_size: int, page_token: str) -> tuple[list[Account], str]:
        request = user_pb2.ListUsersRequest(page_size=page_size, page_token=page_token)
        answer = await reply(self._stub.ListUsers(request))
        return [_account(u) for u in answer.users], answer.next_page_token
