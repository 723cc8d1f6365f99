"""A token whose platform this build of admin-srv does not know (issued by a newer
token-srv) still authenticates through token-srv VerifyToken."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from admin_srv.config import AdminAuthConfig, AdminSrvConfig
from api.token_srv.v1 import token_pb2, token_pb2_grpc
from micro.testing.grpc_loopback import loopback_grpc_endpoint

from .conftest import Admin, Backends, login

if TYPE_CHECKING:
    from api.token_srv.v1.token_pb2_grpc import TokenServiceAsyncStub

# No TokenPlatform value of this build has this number.
LATER_PLATFORM = 7


class NewerTokenSrv(token_pb2_grpc.TokenServiceServicer):
    """token-srv of a later build: the real one's answers, with VerifyToken naming a
    platform added since."""

    def __init__(self, real: TokenServiceAsyncStub) -> None:
        self._real = real

    async def VerifyToken(
        self, request: token_pb2.VerifyTokenRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> token_pb2.VerifyTokenResponse:
        reply = await self._real.VerifyToken(request)
        reply.claims.platform = LATER_PLATFORM  # type: ignore[assignment]
        return reply

    async def GenerateToken(
        self, request: token_pb2.GenerateTokenRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> token_pb2.GenerateTokenResponse:
        return await self._real.GenerateToken(request)

    async def RefreshToken(
        self, request: token_pb2.RefreshTokenRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> token_pb2.RefreshTokenResponse:
        return await self._real.RefreshToken(request)

    async def RevokeToken(
        self, request: token_pb2.RevokeTokenRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> token_pb2.RevokeTokenResponse:
        return await self._real.RevokeToken(request)

    async def GetJwks(
        self, request: token_pb2.GetJwksRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> token_pb2.GetJwksResponse:
        return await self._real.GetJwks(request)

    async def ListRevocations(
        self, request: token_pb2.ListRevocationsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> token_pb2.ListRevocationsResponse:
        return await self._real.ListRevocations(request, timeout=context.time_remaining())


@pytest.fixture
def auth_config() -> AdminAuthConfig:
    return AdminAuthConfig(audience=("go-micro",), remote_verify=True)


@pytest.fixture
async def backends(backends: Backends) -> AsyncIterator[Backends]:
    """The real backends, with token-srv answered by its newer build."""
    newer = NewerTokenSrv(backends.tokens)
    add = token_pb2_grpc.add_TokenServiceServicer_to_server
    async with loopback_grpc_endpoint((add, newer)) as endpoint:
        token_srv = AdminSrvConfig().upstreams.token_service
        yield replace(backends, endpoints={**backends.endpoints, token_srv: endpoint})


async def test_a_platform_unknown_to_this_build_still_authenticates(admin: Admin) -> None:
    assert LATER_PLATFORM not in token_pb2.TokenPlatform.values()
    session = await login(admin.http, "thangn", "123456")
    auth = {"Authorization": f"Bearer {session['token']}"}

    me = await admin.http.get("/admin/v1/me", headers=auth)
    principal = await admin.verifier.verify(session["token"])

    assert me.status_code == 200, me.text
    assert me.json()["userName"] == "thangn"
    assert principal.user_name == "thangn"
    assert principal.platform == f"PLATFORM_{LATER_PLATFORM}"
