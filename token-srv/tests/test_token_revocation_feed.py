"""ListRevocations over gRPC: a snapshot, a cursor, a long poll, and two token-srv
replicas on one database (SQLite file and PostgreSQL) answering the same."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.token_srv.v1 import token_pb2, token_pb2_grpc
from micro.db import open_database
from micro.errors import ServiceError
from micro.idempotency import IdempotencyConfig, OutcomeStore
from micro.testing.fixtures import ServeGrpc
from token_srv.grpc_api import TokenServicer
from token_srv.migrations import MIGRATIONS
from token_srv.repository import SqlTokenRepository
from token_srv.usecases import JwtSettings, TokenUseCases

from .conftest import jwt_config

GENERATE = token_pb2.GenerateTokenRequest(user_id="1", user_name="thangn")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    """One database that both replicas open."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/db/tokens.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


if TYPE_CHECKING:
    from api.token_srv.v1.token_pb2_grpc import TokenServiceAsyncStub

    Replicas = Callable[[int], Awaitable[list[TokenServiceAsyncStub]]]


@pytest.fixture
async def replicas(
    shared_url: str, tmp_path: pathlib.Path, serve_grpc: ServeGrpc
) -> AsyncIterator[Replicas]:
    """`await replicas(n)`: n token-srv servers, each with its own engine on the shared
    database, sharing keys; all closed after the test."""
    settings = JwtSettings.load(jwt_config("k1"), str(tmp_path))
    engines: list[AsyncEngine] = []

    async def start(count: int) -> list[TokenServiceAsyncStub]:
        stubs = []
        for _ in range(count):
            engines.append(await open_database(shared_url, MIGRATIONS, "token-srv"))
            usecases = TokenUseCases(SqlTokenRepository(engines[-1]), lambda: settings)
            outcomes = OutcomeStore(engines[-1], IdempotencyConfig)
            channel = await serve_grpc(
                token_pb2_grpc.add_TokenServiceServicer_to_server,
                TokenServicer(usecases, outcomes),
            )
            stubs.append(token_pb2_grpc.TokenServiceStub(channel))
        return stubs

    try:
        yield start
    finally:
        for engine in engines:
            await engine.dispose()


async def revoked_jti(stub: TokenServiceAsyncStub) -> str:
    pair = (await stub.GenerateToken(GENERATE)).token
    jti = (await stub.VerifyToken(token_pb2.VerifyTokenRequest(token=pair.access_token))).claims.jti
    await stub.RevokeToken(
        token_pb2.RevokeTokenRequest(
            refresh_token=pair.refresh_token, access_token=pair.access_token
        )
    )
    return jti


async def test_a_revocation_through_one_replica_reaches_watchers_of_the_other(
    replicas: Replicas,
) -> None:
    a, b = await replicas(2)
    before = await revoked_jti(a)

    snapshot = await b.ListRevocations(token_pb2.ListRevocationsRequest(after=0))
    assert [r.jti for r in snapshot.revocations] == [before]
    assert snapshot.cursor > 0
    assert not snapshot.more
    # A long poll on b waits; a logout through a ends it.
    waiting = asyncio.ensure_future(
        b.ListRevocations(
            token_pb2.ListRevocationsRequest(after=snapshot.cursor, wait_ms=5000), timeout=10
        )
    )
    later = await revoked_jti(a)
    answer = await waiting

    assert [r.jti for r in answer.revocations] == [later]
    assert answer.cursor > snapshot.cursor
    assert answer.revocations[0].exp > 0
    nothing_new = await a.ListRevocations(token_pb2.ListRevocationsRequest(after=answer.cursor))
    assert list(nothing_new.revocations) == []
    assert nothing_new.cursor == answer.cursor


async def test_revocations_keep_their_order_under_concurrent_logouts(
    replicas: Replicas,
) -> None:
    a, b = await replicas(2)
    seen: list[str] = []
    cursor = 0

    jtis = await asyncio.gather(*(revoked_jti(a if i % 2 else b) for i in range(8)))
    while True:
        page = await b.ListRevocations(token_pb2.ListRevocationsRequest(after=cursor))
        if not page.revocations:
            break
        seen += [r.jti for r in page.revocations]
        cursor = page.cursor

    assert sorted(seen) == sorted(jtis)


async def test_bad_feed_requests_name_the_field(
    token_stub: TokenServiceAsyncStub,
) -> None:
    for request, field in [
        (token_pb2.ListRevocationsRequest(after=-1), "after"),
        (token_pb2.ListRevocationsRequest(wait_ms=-5), "waitMs"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await token_stub.ListRevocations(request)
        error = ServiceError.from_rpc_error(caught.value)
        assert error.code is grpc.StatusCode.INVALID_ARGUMENT
        assert error.field == field
