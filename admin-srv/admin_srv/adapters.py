"""admin-srv's adapters of the services it calls over gRPC, found through discovery:
user-srv's UserService (accounts), token-srv's TokenService (tokens) and device-srv's DevSvc
(the device directory)."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from admin_srv.usecases import Account, DeviceState, Session
from api.device_srv.v1 import device_pb2, device_pb2_grpc
from api.token_srv.v1 import token_pb2, token_pb2_grpc
from api.user_srv.v1 import user_pb2, user_pb2_grpc
from micro.auth import Principal
from micro.client.reply import reply
from micro.revocation import RevocationPage
from micro.transport.client_address import parse_ip

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

    async def verify_password(
        self, user_name: str, password: str, client_key: str, client_address: str
    ) -> Account:
        request = user_pb2.VerifyPasswordRequest(
            user_name=user_name,
            password=password,
            client_key=client_key,
            # An address micro could not tell ("unknown") is none: user-srv wants an IP.
            client_address="" if parse_ip(client_address) is None else client_address,
        )
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


def _session(user_id: str, user_name: str, pair: token_pb2.TokenPair) -> Session:
    return Session(
        user_id=user_id,
        user_name=user_name,
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        token_type=pair.token_type,
        expires_in=pair.expires_in,
    )


def platform_name(value: int) -> str:
    """The enum name of a platform; `PLATFORM_<n>` for one added after this build (a newer
    token-srv), which must not break authentication."""
    try:
        return token_pb2.TokenPlatform.Name(value)  # type: ignore[arg-type]
    except ValueError:
        return f"PLATFORM_{value}"


class GrpcTokens:
    def __init__(self, stub: token_pb2_grpc.TokenServiceAsyncStub) -> None:
        self._stub = stub

    async def issue(self, account: Account, platform: int) -> Session:
        request = token_pb2.GenerateTokenRequest(
            user_id=account.id,
            user_name=account.user_name,
            platform=platform,  # type: ignore[arg-type]
            role=account.role,
        )
        generated = await reply(self._stub.GenerateToken(request))
        return _session(account.id, account.user_name, generated.token)

    async def refresh(self, refresh_token: str) -> tuple[Session, str]:
        """The new session and the role its access token carries."""
        request = token_pb2.RefreshTokenRequest(refresh_token=refresh_token)
        answer = await reply(self._stub.RefreshToken(request))
        return _session(answer.user_id, answer.user_name, answer.token), answer.role

    async def revoke(self, refresh_token: str, access_token: str) -> None:
        request = token_pb2.RevokeTokenRequest(
            refresh_token=refresh_token, access_token=access_token
        )
        await reply(self._stub.RevokeToken(request))

    async def verify(self, token: str) -> Principal:
        """Signature, claims and revocation, checked by token-srv."""
        answer = await reply(self._stub.VerifyToken(token_pb2.VerifyTokenRequest(token=token)))
        claims = answer.claims
        return Principal(
            user_id=claims.uid,
            user_name=claims.user_name or claims.sub,
            role=claims.role,
            platform=platform_name(claims.platform),
            token_id=claims.jti,
        )

    async def revocations(self, after: int, wait: float) -> RevocationPage:
        """token-srv's revocation feed after a cursor, long-polled up to `wait` seconds."""
        request = token_pb2.ListRevocationsRequest(after=after, wait_ms=int(wait * 1000))
        # The call's deadline leaves token-srv time to answer an empty page.
        answer = await reply(self._stub.ListRevocations(request, timeout=wait + 0.5))
        revoked = [(r.jti, float(r.exp)) for r in answer.revocations]
        return RevocationPage(revoked, answer.cursor, answer.more)

    async def jwks(self) -> list[dict[str, Any]]:
        answer = await reply(self._stub.GetJwks(token_pb2.GetJwksRequest()))
        return [
            json_format.MessageToDict(key, preserving_proto_field_name=True) for key in answer.keys
        ]


class GrpcDeviceDirectory:
    def __init__(self, stub: device_pb2_grpc.DevSvcAsyncStub) -> None:
        self._stub = stub

    async def get(self, name: str) -> DeviceState:
        device = await reply(self._stub.Get(device_pb2.DeviceName(name=name)))
        return DeviceState(device.name, device.active)
