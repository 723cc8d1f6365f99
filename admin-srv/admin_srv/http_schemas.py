"""The JSON bodies of admin-srv's HTTP API as its OpenAPI document declares them: the
admin_srv.v1 messages in the protobuf JSON mapping, with the rules the services behind
it enforce, so that a request valid by the document is never refused as malformed.

The rules belong to user-srv (user_srv.domain, user_srv.usecases) and device-srv
(device_srv.domain); they are restated here because admin-srv does not import the
services it calls. tests/test_openapi_contract.py holds both copies equal.
"""

from __future__ import annotations

from typing import Any

from admin_srv.usecases import ROLES
from api.admin_srv.v1 import admin_pb2
from micro.transport.openapi import label_value_name
from micro.transport.proto_schema import message_schema

USER_NAME_PATTERN = "^[A-Za-z0-9._-]{1,64}$"
USER_NAME_MAX_LENGTH = 64
PASSWORD_MIN_LENGTH = 6  # of a new password; a password offered at login may be shorter
PASSWORD_MAX_LENGTH = 128
USERS_DEFAULT_PAGE_SIZE = 20
USERS_MAX_PAGE_SIZE = 100
# Declared, not checked here: device-srv judges names, so the rule runs in one place.
DEVICE_NAME = label_value_name("device name")

USER_NAME: dict[str, Any] = {
    "minLength": 1,
    "maxLength": USER_NAME_MAX_LENGTH,
    "pattern": USER_NAME_PATTERN,
    "description": "1-64 characters: ASCII letters, digits, '.', '_' or '-'",
}
OFFERED_PASSWORD: dict[str, Any] = {"minLength": 1, "maxLength": PASSWORD_MAX_LENGTH}
NEW_PASSWORD: dict[str, Any] = {"minLength": PASSWORD_MIN_LENGTH, "maxLength": PASSWORD_MAX_LENGTH}
TOKEN: dict[str, Any] = {"minLength": 1}
ROLE_NAMES = list(ROLES)

LOGIN_REQUEST = message_schema(
    admin_pb2.LoginRequest.DESCRIPTOR,
    request=True,
    required=["userName", "password"],
    constraints={"userName": USER_NAME, "password": OFFERED_PASSWORD},
)
LOGOUT_REQUEST = message_schema(
    admin_pb2.LogoutRequest.DESCRIPTOR,
    request=True,
    required=["refreshToken"],
    constraints={"refreshToken": TOKEN},
)
REFRESH_REQUEST = message_schema(
    admin_pb2.RefreshTokenRequest.DESCRIPTOR,
    request=True,
    required=["refreshToken"],
    constraints={"refreshToken": TOKEN},
)
CREATE_USER_REQUEST = message_schema(
    admin_pb2.CreateUserRequest.DESCRIPTOR,
    request=True,
    required=["userName", "password"],
    constraints={
        "userName": USER_NAME,
        "password": NEW_PASSWORD,
        # "" (or left out) is a user.
        "role": {"enum": ["", *ROLE_NAMES]},
    },
)

LOGIN_REPLY = message_schema(
    admin_pb2.LoginReply.DESCRIPTOR,
    request=False,
    required=["id", "userName", "token", "refreshToken", "tokenType", "expiresIn"],
)
LOGOUT_REPLY = message_schema(admin_pb2.LogoutReply.DESCRIPTOR, request=False)
USER = message_schema(
    admin_pb2.User.DESCRIPTOR,
    request=False,
    required=["id", "userName", "role"],
    constraints={"role": {"enum": ROLE_NAMES}},
)
# A device that is not active has no "active" (the JSON mapping leaves defaults out).
DEVICE = message_schema(admin_pb2.Device.DESCRIPTOR, request=False, required=["name"])
# Both fields are left out when empty: no users, or the last page.
LIST_USERS_REPLY = message_schema(
    admin_pb2.ListUsersReply.DESCRIPTOR, request=False, constraints={"users": {"items": USER}}
)
