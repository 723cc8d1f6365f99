"""token-srv through its real gRPC server and a real SQLite file."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import jwt
import pytest

from api.token_srv.v1 import token_pb2
from micro.errors import ServiceError

if TYPE_CHECKING:
    from api.token_srv.v1.token_pb2_grpc import TokenServiceAsyncStub


async def rpc_error(call: object) -> ServiceError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return ServiceError.from_rpc_error(caught.value)


GENERATE = token_pb2.GenerateTokenRequest(user_id="1", user_name="thangn", role="admin")


async def test_generate_verify_refresh_revoke_over_grpc(token_stub: TokenServiceAsyncStub) -> None:
    pair = (await token_stub.GenerateToken(GENERATE)).token

    verified = await token_stub.VerifyToken(token_pb2.VerifyTokenRequest(token=pair.access_token))
    claims = verified.claims
    refreshed = await token_stub.RefreshToken(
        token_pb2.RefreshTokenRequest(refresh_token=pair.refresh_token)
    )
    await token_stub.RevokeToken(
        token_pb2.RevokeTokenRequest(
            refresh_token=refreshed.token.refresh_token, access_token=refreshed.token.access_token
        )
    )
    revoked = await rpc_error(
        token_stub.VerifyToken(token_pb2.VerifyTokenRequest(token=refreshed.token.access_token))
    )
    spent = await rpc_error(
        token_stub.RefreshToken(
            token_pb2.RefreshTokenRequest(refresh_token=refreshed.token.refresh_token)
        )
    )

    assert pair.token_type == "Bearer"
    assert pair.expires_in == 900
    assert (claims.sub, claims.uid, claims.role) == ("thangn", "1", "admin")
    assert claims.platform == token_pb2.TOKEN_PLATFORM_WEB
    assert list(claims.aud) == ["go-micro"]
    assert (refreshed.user_id, refreshed.user_name) == ("1", "thangn")
    assert revoked.code is grpc.StatusCode.UNAUTHENTICATED
    assert spent.field == "refreshToken"


async def test_jwks_serves_public_keys_that_verify(token_stub: TokenServiceAsyncStub) -> None:
    pair = (await token_stub.GenerateToken(GENERATE)).token

    jwks = await token_stub.GetJwks(token_pb2.GetJwksRequest())

    first = jwks.keys[0]
    assert [k.kid for k in jwks.keys] == ["k1", "k0"]
    assert (first.kty, first.crv, first.alg, first.use) == ("OKP", "Ed25519", "EdDSA", "sig")
    key = jwt.PyJWK({"kty": "OKP", "crv": "Ed25519", "x": first.x, "kid": first.kid})
    claims = jwt.decode(pair.access_token, key.key, algorithms=["EdDSA"], audience="go-micro")
    assert claims["sub"] == "thangn"


async def test_bad_requests_name_their_field(token_stub: TokenServiceAsyncStub) -> None:
    no_user = await rpc_error(
        token_stub.GenerateToken(token_pb2.GenerateTokenRequest(user_name="x"))
    )
    bad_platform = await rpc_error(
        token_stub.GenerateToken(
            token_pb2.GenerateTokenRequest(user_id="1", user_name="x", platform=99)  # type: ignore[arg-type]
        )
    )
    empty_verify = await rpc_error(token_stub.VerifyToken(token_pb2.VerifyTokenRequest()))
    garbage = await rpc_error(token_stub.VerifyToken(token_pb2.VerifyTokenRequest(token="a.b.c")))
    empty_revoke = await rpc_error(token_stub.RevokeToken(token_pb2.RevokeTokenRequest()))

    assert (no_user.code, no_user.field) == (grpc.StatusCode.INVALID_ARGUMENT, "userId")
    assert bad_platform.field == "platform"
    assert empty_verify.field == "token"
    assert garbage.code is grpc.StatusCode.UNAUTHENTICATED
    assert empty_revoke.code is grpc.StatusCode.INVALID_ARGUMENT
