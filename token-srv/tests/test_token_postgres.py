"""token-srv's migrations and token store on a throwaway PostgreSQL server."""

from __future__ import annotations

import asyncio
import pathlib

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from micro.db import schema_versions
from micro.errors import ServiceError
from token_srv.domain import Subject
from token_srv.migrations import MIGRATIONS
from token_srv.repository import SqlTokenRepository
from token_srv.usecases import JwtSettings, TokenUseCases

from .conftest import jwt_config

pytestmark = pytest.mark.postgres


async def test_rotation_reuse_and_revocation_on_postgres(
    postgres_engine: AsyncEngine, tmp_path: pathlib.Path
) -> None:
    async with postgres_engine.connect() as conn:
        assert await conn.run_sync(schema_versions) == [m.version for m in MIGRATIONS]
    settings = JwtSettings.load(jwt_config("k1"), str(tmp_path))
    usecases = TokenUseCases(SqlTokenRepository(postgres_engine), lambda: settings)

    first = await usecases.generate(Subject("1", "thangn"))
    second, _ = await usecases.refresh(first.refresh_token)
    # Two uses of the same token at once: exactly one wins, the other revokes the family.
    results = await asyncio.gather(
        usecases.refresh(second.refresh_token),
        usecases.refresh(second.refresh_token),
        return_exceptions=True,
    )
    await usecases.revoke("", first.access_token)

    assert sum(isinstance(r, ServiceError) for r in results) >= 1
    with pytest.raises(ServiceError) as revoked:
        await usecases.verify(first.access_token)
    assert revoked.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert (await usecases.verify(second.access_token))["sub"] == "thangn"
