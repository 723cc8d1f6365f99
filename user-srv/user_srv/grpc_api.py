"""The gRPC face of user-srv: UserService, translating messages to use-case calls."""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from api.user_srv.v1 import user_pb2, user_pb2_grpc
from micro.errors import ServiceError, invalid_argument
from micro.idempotency import KeyedCall, OutcomeStore
from micro.servicer import Context, Servicer
from user_srv.attempts import KeyedAttempt
from user_srv.domain import Role, User
from user_srv.usecases import UserUseCases

_ROLE_TO_PROTO = {Role.USER: user_pb2.USER_ROLE_USER, Role.ADMIN: user_pb2.USER_ROLE_ADMIN}
_ROLE_FROM_PROTO = {
    user_pb2.USER_ROLE_UNSPECIFIED: Role.USER,
    user_pb2.USER_ROLE_USER: Role.USER,
    user_pb2.USER_ROLE_ADMIN: Role.ADMIN,
}


def user_message(user: User) -> user_pb2.User:
    created = Timestamp()
    created.FromDatetime(user.create_time)
    return user_pb2.User(
        id=user.id, user_name=user.user_name, role=_ROLE_TO_PROTO[user.role], create_time=created
    )


class UserServicer(Servicer[UserUseCases], user_pb2_grpc.UserServiceServicer):
    def __init__(self, usecases: UserUseCases, outcomes: OutcomeStore) -> None:
        super().__init__(usecases)
        self.outcomes = outcomes  # CreateUser and VerifyPassword are keyed

    async def VerifyPassword(
        self, request: user_pb2.VerifyPasswordRequest, context: Context
    ) -> user_pb2.VerifyPasswordResponse:
        # The key's request is the account alone: no fast hash of a password is ever
        # stored, and a retried login may carry the device token its first attempt set.
        attempt = user_pb2.VerifyPasswordRequest(user_name=request.user_name)
        call = KeyedCall.of(context, "VerifyPassword", attempt)
        user = await self.usecases.verify_password(
            request.user_name,
            request.password,
            request.client_key,
            request.client_address,
            None if call is None else KeyedAttempt(self.outcomes, call),
        )
        return user_pb2.VerifyPasswordResponse(user=user_message(user))

    async def GetUser(
        self, request: user_pb2.GetUserRequest, context: Context
    ) -> user_pb2.GetUserResponse:
        key = request.WhichOneof("key")
        if key == "id":
            user = await self.usecases.get_user_by_id(request.id)
        elif key == "user_name":
            user = await self.usecases.get_user_by_name(request.user_name)
        else:
            raise ServiceError(
                grpc.StatusCode.INVALID_ARGUMENT, "id or userName: one must be set", field="id"
            )
        return user_pb2.GetUserResponse(user=user_message(user))

    async def CreateUser(
        self, request: user_pb2.CreateUserRequest, context: Context
    ) -> user_pb2.CreateUserResponse:
        role = _ROLE_FROM_PROTO.get(request.role)
        if role is None:
            raise invalid_argument("role", "must be USER_ROLE_USER or USER_ROLE_ADMIN")
        return await self.outcomes.run(
            context,
            "CreateUser",
            request,
            user_pb2.CreateUserResponse,
            lambda user: user_pb2.CreateUserResponse(user=user_message(user)),
            lambda once: self.usecases.create_user(request.user_name, request.password, role, once),
        )

    async def ListUsers(
        self, request: user_pb2.ListUsersRequest, context: Context
    ) -> user_pb2.ListUsersResponse:
        users, next_token = await self.usecases.list_users(request.page_size, request.page_token)
        return user_pb2.ListUsersResponse(
            users=[user_message(u) for u in users], next_page_token=next_token
        )
