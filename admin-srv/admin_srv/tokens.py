"""Tokens over gRPC: token-srv's TokenService, found through discovery."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from admin_srv.usecases import Account, Session
from api.token_srv.v1 import token_pb2, token_pb2_grpc
from micro.auth import Principal
from micro.client.reply import reply


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

    async def refresh(self, refresh_token: str) -> Session:
        request = token_pb2.RefreshTokenRequest(refresh_token=refresh_token)
        answer = await reply(self._stub.RefreshToken(request))
        return _session(answer.user_id, answer.user_name, answer.token)

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

    async def jwks(self) -> list[dict[str, Any]]:
        answer = await reply(self._stub.GetJwks(token_pb2.GetJwksRequest()))
        return [
            json_format.MessageToDict(key, preserving_proto_field_name=True) for key in answer.keys
        ]
