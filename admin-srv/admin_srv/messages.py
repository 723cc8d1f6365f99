"""admin_srv.v1 messages built from use-case results, shared by the HTTP and gRPC faces."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from admin_srv.usecases import Account, DeviceState, Session
from api.admin_srv.v1 import admin_pb2


def login_reply(session: Session) -> admin_pb2.LoginReply:
    return admin_pb2.LoginReply(
        id=session.user_id,
        user_name=session.user_name,
        token=session.access_token,
        refresh_token=session.refresh_token,
        token_type=session.token_type,
        expires_in=session.expires_in,
    )


def user(account: Account) -> admin_pb2.User:
    message = admin_pb2.User(id=account.id, user_name=account.user_name, role=account.role)
    if account.create_time is not None:
        created = Timestamp()
        created.FromDatetime(account.create_time)
        message.create_time.CopyFrom(created)
    return message


def device(state: DeviceState) -> admin_pb2.Device:
    return admin_pb2.Device(name=state.name, active=state.active)


def users_reply(accounts: list[Account], next_page_token: str) -> admin_pb2.ListUsersReply:
    return admin_pb2.ListUsersReply(
        users=[user(a) for a in accounts], next_page_token=next_page_token
    )
