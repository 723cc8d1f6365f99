"""How admin-srv checks access tokens: locally against token-srv's JWKS (cached, refetched
on an unknown kid), and through token-srv VerifyToken when HS256 is accepted (its key is
a secret) or auth.remote_verify asks for revocation to count at once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from google.protobuf import json_format

from admin_srv.config import AdminAuthConfig
from admin_srv.usecases import upstream
from api.token_srv.v1 import token_pb2
from micro.auth import JwtVerifier, Principal, TokenVerifier

if TYPE_CHECKING:
    from api.token_srv.v1.token_pb2_grpc import TokenServiceAsyncStub


class RemoteVerifier:
    """token-srv VerifyToken: signature, claims and revocation, answered as a Principal."""

    def __init__(self, tokens: TokenServiceAsyncStub, local: TokenVerifier | None) -> None:
        self._tokens = tokens
        self._local = local

    async def verify(self, token: str) -> Principal:
        if self._local is not None:
            await self._local.verify(token)  # refuses forgeries without a network call
        reply = await upstream(self._tokens.VerifyToken(token_pb2.VerifyTokenRequest(token=token)))
        claims = reply.claims
        return Principal(
            user_id=claims.uid,
            user_name=claims.user_name or claims.sub,
            role=claims.role,
            platform=platform_name(claims.platform),
            token_id=claims.jti,
        )


def platform_name(value: int) -> str:
    """The enum name of a platform; `PLATFORM_<n>` for one added after this build (a newer
    token-srv), which must not break authentication."""
    try:
        return token_pb2.TokenPlatform.Name(value)  # type: ignore[arg-type]
    except ValueError:
        return f"PLATFORM_{value}"


def build_verifier(cfg: AdminAuthConfig, tokens: TokenServiceAsyncStub) -> TokenVerifier:
    async def jwks() -> list[dict[str, Any]]:
        reply = await upstream(tokens.GetJwks(token_pb2.GetJwksRequest()))
        return [
            json_format.MessageToDict(key, preserving_proto_field_name=True) for key in reply.keys
        ]

    public_algorithms = tuple(a for a in cfg.algorithms if a != "HS256")
    local = (
        JwtVerifier.from_config(jwks, cfg.model_copy(update={"algorithms": public_algorithms}))
        if public_algorithms
        else None
    )
    if "HS256" in cfg.algorithms or cfg.remote_verify or local is None:
        return RemoteVerifier(tokens, local if "HS256" not in cfg.algorithms else None)
    return local
