"""Keyed GenerateToken and RefreshToken on SQLite and PostgreSQL, over gRPC: a repeat
with the same key answers the first call's outcome, never applies twice, and a keyed
repeat of a refresh is not taken for refresh-token reuse, even when both run at once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import grpc
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.token_srv.v1 import token_pb2, token_pb2_grpc
from micro.client.idempotency import IDEMPOTENCY_KEY_METADATA
from micro.idempotency import IdempotencyConfig, OutcomeStore
from micro.testing.fixtures import ServeGrpc
from token_srv.grpc_api import TokenServicer
from token_srv.repository import SqlTokenRepository, refresh_families, refresh_tokens
from token_srv.usecases import JwtSettings, TokenUseCases

if TYPE_CHECKING:
    from api.token_srv.v1.token_pb2_grpc import TokenServiceAsyncStub

GENERATE = token_pb2.GenerateTokenRequest(user_id="1", user_name="thangn")


@pytest.fixture
async def stub(
    any_engine: AsyncEngine, settings: JwtSettings, serve_grpc: ServeGrpc
) -> TokenServiceAsyncStub:
    usecases = TokenUseCases(SqlTokenRepository(any_engine), lambda: settings)
    servicer = TokenServicer(usecases, OutcomeStore(any_engine, IdempotencyConfig))
    channel = await serve_grpc(token_pb2_grpc.add_TokenServiceServicer_to_server, servicer)
    return token_pb2_grpc.TokenServiceStub(channel)


def keyed(key: str) -> Sequence[tuple[str, str]]:
    return ((IDEMPOTENCY_KEY_METADATA, key),)


async def counts(engine: AsyncEngine) -> tuple[int, int, int]:
    """(families, revoked families, live refresh tokens)."""
    t, f = refresh_tokens.c, refresh_families.c
    async with engine.connect() as conn:
        families = (await conn.execute(select(func.count()).select_from(refresh_families))).one()
        revoked = (await conn.execute(select(func.count()).where(f.revoked_at.is_not(None)))).one()
        live = (
            await conn.execute(
                select(func.count()).where(t.spent_at.is_(None), t.revoked_at.is_(None))
            )
        ).one()
    return int(families[0]), int(revoked[0]), int(live[0])


async def test_a_keyed_generate_repeated_starts_one_session(
    stub: TokenServiceAsyncStub, any_engine: AsyncEngine
) -> None:
    first = await stub.GenerateToken(GENERATE, metadata=keyed("g1"))
    again = await stub.GenerateToken(GENERATE, metadata=keyed("g1"))
    assert again.SerializeToString() == first.SerializeToString()
    assert await counts(any_engine) == (1, 0, 1)
    other = await stub.GenerateToken(GENERATE, metadata=keyed("g2"))
    assert other.token.refresh_token != first.token.refresh_token
    assert await counts(any_engine) == (2, 0, 2)


async def test_keyed_generates_at_once_start_one_session(
    stub: TokenServiceAsyncStub, any_engine: AsyncEngine
) -> None:
    answers = await asyncio.gather(
        *(stub.GenerateToken(GENERATE, metadata=keyed("g1")) for _ in range(4))
    )
    assert len({a.SerializeToString() for a in answers}) == 1
    assert await counts(any_engine) == (1, 0, 1)


async def test_a_keyed_refresh_repeated_is_not_reuse(
    stub: TokenServiceAsyncStub, any_engine: AsyncEngine
) -> None:
    pair = (await stub.GenerateToken(GENERATE)).token
    request = token_pb2.RefreshTokenRequest(refresh_token=pair.refresh_token)
    first = await stub.RefreshToken(request, metadata=keyed("r1"))
    again = await stub.RefreshToken(request, metadata=keyed("r1"))
    assert again.SerializeToString() == first.SerializeToString()
    assert await counts(any_engine) == (1, 0, 1)  # not revoked: the successor lives
    successor = token_pb2.RefreshTokenRequest(refresh_token=first.token.refresh_token)
    assert (await stub.RefreshToken(successor)).user_name == "thangn"


async def test_keyed_refreshes_at_once_rotate_once_and_revoke_nothing(
    stub: TokenServiceAsyncStub, any_engine: AsyncEngine
) -> None:
    pair = (await stub.GenerateToken(GENERATE)).token
    request = token_pb2.RefreshTokenRequest(refresh_token=pair.refresh_token)
    answers = await asyncio.gather(
        *(stub.RefreshToken(request, metadata=keyed("r1")) for _ in range(4))
    )
    assert len({a.SerializeToString() for a in answers}) == 1
    assert await counts(any_engine) == (1, 0, 1)


async def test_a_refresh_with_a_new_key_is_still_reuse(
    stub: TokenServiceAsyncStub, any_engine: AsyncEngine
) -> None:
    pair = (await stub.GenerateToken(GENERATE)).token
    request = token_pb2.RefreshTokenRequest(refresh_token=pair.refresh_token)
    await stub.RefreshToken(request, metadata=keyed("r1"))
    for key in ("r2", "r2"):  # the refusal is the outcome its key answers again
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.RefreshToken(request, metadata=keyed(key))
        assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "already used" in (raised.value.details() or "")
    assert await counts(any_engine) == (1, 1, 0)


async def test_a_key_reused_for_another_user_is_invalid_argument(
    stub: TokenServiceAsyncStub,
) -> None:
    await stub.GenerateToken(GENERATE, metadata=keyed("g1"))
    other = token_pb2.GenerateTokenRequest(user_id="2", user_name="someone")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GenerateToken(other, metadata=keyed("g1"))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert IDEMPOTENCY_KEY_METADATA in (raised.value.details() or "")
