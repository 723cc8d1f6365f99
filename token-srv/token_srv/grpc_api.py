"""The gRPC face of token-srv: TokenService, translating messages to use-case calls."""

from __future__ import annotations

from typing import Any

import grpc

from api.token_srv.v1 import token_pb2, token_pb2_grpc
from token_srv.domain import DEFAULT_PLATFORM, Subject, TokenPair
from token_srv.usecases import TokenUseCases

Context = grpc.aio.ServicerContext[object, object]


def _pair(pair: TokenPair) -> token_pb2.TokenPair:
    return token_pb2.TokenPair(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        token_type=pair.token_type,
        expires_in=pair.expires_in,
        refresh_expires_in=pair.refresh_expires_in,
    )


def _platform_name(value: int) -> str:
    if value == token_pb2.TOKEN_PLATFORM_UNSPECIFIED:
        return DEFAULT_PLATFORM
    try:
        return token_pb2.TokenPlatform.Name(value)  # type: ignore[arg-type]
    except ValueError:
        return f"unknown platform {value}"  # refused by the use case, naming the field


def claims_message(claims: dict[str, Any]) -> token_pb2.TokenClaims:
    aud = claims.get("aud", [])
    platform = str(claims.get("platform", DEFAULT_PLATFORM))
    return token_pb2.TokenClaims(
        sub=str(claims["sub"]),
        uid=str(claims["uid"]),
        user_name=str(claims.get("user_name", claims["sub"])),
        platform=token_pb2.TokenPlatform.Value(platform)
        if platform in token_pb2.TokenPlatform.keys()  # noqa: SIM118 - an enum wrapper
        else token_pb2.TOKEN_PLATFORM_UNSPECIFIED,
        role=str(claims.get("role", "")),
        iat=int(claims["iat"]),
        nbf=int(claims["nbf"]),
        exp=int(claims["exp"]),
        iss=str(claims["iss"]),
        aud=[aud] if isinstance(aud, str) else [str(a) for a in aud],
        jti=str(claims["jti"]),
    )


class TokenServicer(token_pb2_grpc.TokenServiceServicer):
    """ServiceErrors raised by the use cases become gRPC statuses in the framework's server."""

    def __init__(self, tokens: TokenUseCases) -> None:
        self._tokens = tokens

    async def GenerateToken(
        self, request: token_pb2.GenerateTokenRequest, context: Context
    ) -> token_pb2.GenerateTokenResponse:
        subject = Subject(
            user_id=request.user_id,
            user_name=request.user_name,
            role=request.role or "user",
            platform=_platform_name(request.platform),
        )
        return token_pb2.GenerateTokenResponse(token=_pair(await self._tokens.generate(subject)))

    async def VerifyToken(
        self, request: token_pb2.VerifyTokenRequest, context: Context
    ) -> token_pb2.VerifyTokenResponse:
        claims = await self._tokens.verify(request.token)
        return token_pb2.VerifyTokenResponse(claims=claims_message(claims))

    async def RefreshToken(
        self, request: token_pb2.RefreshTokenRequest, context: Context
    ) -> token_pb2.RefreshTokenResponse:
        pair, subject = await self._tokens.refresh(request.refresh_token)
        return token_pb2.RefreshTokenResponse(
            token=_pair(pair), user_id=subject.user_id, user_name=subject.user_name
        )

    async def RevokeToken(
        self, request: token_pb2.RevokeTokenRequest, context: Context
    ) -> token_pb2.RevokeTokenResponse:
        await self._tokens.revoke(request.refresh_token, request.access_token)
        return token_pb2.RevokeTokenResponse()

    async def GetJwks(
        self, request: token_pb2.GetJwksRequest, context: Context
    ) -> token_pb2.GetJwksResponse:
        return token_pb2.GetJwksResponse(keys=[token_pb2.Jwk(**k) for k in self._tokens.jwks()])
