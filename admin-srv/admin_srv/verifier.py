"""How admin-srv checks access tokens: locally against token-srv's JWKS (cached, refetched
on an unknown kid) and the revoked tokens its feed keeps in memory, and through token-srv
VerifyToken when HS256 is accepted (its key is a secret) or auth.remote_verify asks for
every check to reach token-srv."""

from __future__ import annotations

from admin_srv.adapters import GrpcTokens
from admin_srv.config import AdminAuthConfig
from micro.auth import JwtVerifier, Principal, RevocationList, TokenVerifier


class RemoteVerifier:
    """token-srv VerifyToken: signature, claims and revocation, answered as a Principal."""

    def __init__(self, tokens: GrpcTokens, local: TokenVerifier | None) -> None:
        self._tokens = tokens
        self._local = local

    async def verify(self, token: str) -> Principal:
        if self._local is not None:
            await self._local.verify(token)  # refuses forgeries without a network call
        return await self._tokens.verify(token)


def build_verifier(
    cfg: AdminAuthConfig, tokens: GrpcTokens, revoked: RevocationList
) -> TokenVerifier:
    public_algorithms = tuple(a for a in cfg.algorithms if a != "HS256")
    local = (
        JwtVerifier.from_config(
            tokens.jwks, cfg.model_copy(update={"algorithms": public_algorithms}), revoked
        )
        if public_algorithms
        else None
    )
    if "HS256" in cfg.algorithms or cfg.remote_verify or local is None:
        return RemoteVerifier(tokens, local if "HS256" not in cfg.algorithms else None)
    return local
