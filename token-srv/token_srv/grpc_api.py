"""The gRPC face of token-srv: TokenService, translating messages to use-case calls."""

from __future__ import annotations

import dataclasses
from typing import Any

from api.token_srv.v1 import token_pb2, token_pb2_grpc
from micro.errors import invalid_argument
from micro.idempotency import OutcomeStore
from micro.servicer import Context, Servicer
from token_srv.domain import DEFAULT_PLATFORM, Subject, TokenPair
from token_srv.usecases import TokenUseCases

# A long poll answers this long before the call's deadline, so the empty answer arrives.
DEADLINE_MARGIN_SECONDS = 0.2


def _pair(pair: TokenPair) -> token_pb2.TokenPair:
    return token_pb2.TokenPair(**dataclasses.asdict(pair))  # the same fields by design


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


class TokenServicer(Servicer[TokenUseCases], token_pb2_grpc.TokenServiceServicer):
    # Every admin-srv replica long-polls the revocation feed without end.
    quiet_methods = ("ListRevocations",)

    def __init__(self, usecases: TokenUseCases, outcomes: OutcomeStore) -> None:
        super().__init__(usecases)
        self.outcomes = outcomes  # GenerateToken and RefreshToken are keyed

    async def GenerateToken(
        self, request: token_pb2.GenerateTokenRequest, context: Context
    ) -> token_pb2.GenerateTokenResponse:
        subject = Subject(
            user_id=request.user_id,
            user_name=request.user_name,
            role=request.role or "user",
            platform=_platform_name(request.platform),
        )
        return await self.outcomes.run(
            context,
            "GenerateToken",
            request,
            token_pb2.GenerateTokenResponse,
            lambda pair: token_pb2.GenerateTokenResponse(token=_pair(pair)),
            lambda once: self.usecases.generate(subject, once),
        )

    async def VerifyToken(
        self, request: token_pb2.VerifyTokenRequest, context: Context
    ) -> token_pb2.VerifyTokenResponse:
        claims = await self.usecases.verify(request.token)
        return token_pb2.VerifyTokenResponse(claims=claims_message(claims))

    async def RefreshToken(
        self, request: token_pb2.RefreshTokenRequest, context: Context
    ) -> token_pb2.RefreshTokenResponse:
        def encode(refreshed: tuple[TokenPair, Subject]) -> token_pb2.RefreshTokenResponse:
            pair, subject = refreshed
            return token_pb2.RefreshTokenResponse(
                token=_pair(pair),
                user_id=subject.user_id,
                user_name=subject.user_name,
                role=subject.role,
            )

        return await self.outcomes.run(
            context,
            "RefreshToken",
            request,
            token_pb2.RefreshTokenResponse,
            encode,
            lambda once: self.usecases.refresh(request.refresh_token, once),
        )

    async def RevokeToken(
        self, request: token_pb2.RevokeTokenRequest, context: Context
    ) -> token_pb2.RevokeTokenResponse:
        await self.usecases.revoke(request.refresh_token, request.access_token)
        return token_pb2.RevokeTokenResponse()

    async def GetJwks(
        self, request: token_pb2.GetJwksRequest, context: Context
    ) -> token_pb2.GetJwksResponse:
        return token_pb2.GetJwksResponse(keys=[token_pb2.Jwk(**k) for k in self.usecases.jwks()])

    async def ListRevocations(
        self, request: token_pb2.ListRevocationsRequest, context: Context
    ) -> token_pb2.ListRevocationsResponse:
        if request.wait_ms < 0:
            raise invalid_argument("waitMs", "must not be negative")
        wait = request.wait_ms / 1000
        remaining = context.time_remaining()
        if remaining is not None:
            wait = min(wait, remaining - DEADLINE_MARGIN_SECONDS)
        page = await self.usecases.revocations(request.after, wait)
        return token_pb2.ListRevocationsResponse(
            revocations=[
                token_pb2.Revocation(jti=e.jti, exp=int(e.expires_at.timestamp()))
                for e in page.entries
            ],
            cursor=page.cursor,
            more=page.more,
        )
