"""Sessions on SQLite and PostgreSQL: rotation in one transaction under real concurrency,
the absolute session lifetime, and logout with any bearer."""

from __future__ import annotations

import asyncio
import pathlib
import time
from datetime import timedelta

import grpc
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from micro.errors import ServiceError
from token_srv.domain import Subject, TokenPair
from token_srv.repository import SqlTokenRepository, refresh_tokens
from token_srv.usecases import JwtSettings, TokenUseCases

from .conftest import jwt_config

THANGN = Subject(user_id="1", user_name="thangn")


@pytest.fixture
def sessions(any_engine: AsyncEngine, settings: JwtSettings) -> TokenUseCases:
    return TokenUseCases(SqlTokenRepository(any_engine), lambda: settings)


async def live_tokens(engine: AsyncEngine) -> int:
    """Refresh tokens neither spent nor revoked: each one could still be exchanged."""
    query = select(func.count()).where(
        refresh_tokens.c.spent_at.is_(None), refresh_tokens.c.revoked_at.is_(None)
    )
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def refused_refresh(usecases: TokenUseCases, token: str) -> str:
    with pytest.raises(ServiceError) as caught:
        await usecases.refresh(token)
    assert caught.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.field == "refreshToken"
    return caught.value.message


async def test_concurrent_refreshes_of_one_token_leave_no_live_successor(
    sessions: TokenUseCases, any_engine: AsyncEngine
) -> None:
    first = await sessions.generate(THANGN)

    results = await asyncio.gather(
        *(sessions.refresh(first.refresh_token) for _ in range(12)), return_exceptions=True
    )

    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, ServiceError)]
    assert len(winners) <= 1
    assert len(winners) + len(losers) == 12  # no other error (no lock timeout, no 500)
    # Every loser is a reuse that revoked the family, the winner's successor with it.
    assert await live_tokens(any_engine) == 0
    for pair, _ in winners:
        await refused_refresh(sessions, pair.refresh_token)


async def test_reuse_racing_a_rotation_never_leaves_a_live_successor(
    sessions: TokenUseCases, any_engine: AsyncEngine
) -> None:
    async def race() -> list[TokenPair]:
        first = await sessions.generate(THANGN)
        second, _ = await sessions.refresh(first.refresh_token)
        # The leaked first token comes back while the second one is being rotated.
        rotated, reused = await asyncio.gather(
            sessions.refresh(second.refresh_token),
            sessions.refresh(first.refresh_token),
            return_exceptions=True,
        )
        assert isinstance(reused, ServiceError)
        return [] if isinstance(rotated, BaseException) else [rotated[0]]

    successors = [p for ps in await asyncio.gather(*(race() for _ in range(10))) for p in ps]

    assert await live_tokens(any_engine) == 0
    for pair in successors:
        assert "revoked" in await refused_refresh(sessions, pair.refresh_token)


async def test_a_session_ends_at_its_absolute_lifetime(
    any_engine: AsyncEngine, tmp_path: pathlib.Path
) -> None:
    here = str(tmp_path)
    repository = SqlTokenRepository(any_engine)
    cfg = jwt_config("k1")
    long = JwtSettings.load(cfg.model_copy(update={"session_lifetime": timedelta(hours=12)}), here)
    short = JwtSettings.load(cfg.model_copy(update={"session_lifetime": timedelta(hours=1)}), here)
    two_hours_ago = TokenUseCases(repository, lambda: long, clock=lambda: time.time() - 7200)
    now_long = TokenUseCases(repository, lambda: long)
    now_short = TokenUseCases(repository, lambda: short)

    old = await two_hours_ago.generate(THANGN)
    fresh = await now_short.generate(THANGN)

    # The sliding window would allow days; the session's end caps the refresh token.
    assert fresh.refresh_expires_in <= 3600
    rotated, _ = await now_long.refresh(old.refresh_token)  # within 12 hours
    assert "session has ended" in await refused_refresh(now_short, rotated.refresh_token)


async def test_logout_with_any_bearer_ends_the_session(
    sessions: TokenUseCases, any_engine: AsyncEngine, settings: JwtSettings
) -> None:
    repository = SqlTokenRepository(any_engine)
    expired_issuer = TokenUseCases(repository, lambda: settings, clock=lambda: time.time() - 3600)
    expired = await expired_issuer.generate(THANGN)
    bearers = ["not-a-jwt", expired.access_token, ""]
    pairs = [await sessions.generate(THANGN) for _ in bearers]

    for pair, bearer in zip(pairs, bearers, strict=True):
        await sessions.revoke(pair.refresh_token, bearer)

    for pair in pairs:
        await refused_refresh(sessions, pair.refresh_token)
        # Its own access token was not the bearer: it stays valid until its expiry.
        assert (await sessions.verify(pair.access_token))["sub"] == "thangn"
    with pytest.raises(ServiceError) as alone:
        await sessions.revoke("", "not-a-jwt")
    assert alone.value.code is grpc.StatusCode.UNAUTHENTICATED
