"""A token store from before sessions and the revocation feed, upgraded in place (SQLite
and PostgreSQL): its sessions refresh, its revocations stay and enter the feed."""

from __future__ import annotations

import pathlib
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import MetaData, Table

from micro.db import open_database
from micro.errors import ServiceError
from token_srv.domain import Subject, refresh_token_hash
from token_srv.migrations import MIGRATIONS
from token_srv.repository import SqlTokenRepository
from token_srv.usecases import JwtSettings, TokenUseCases

from .conftest import jwt_config


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/db/tokens.db"
    postgres: str = request.getfixturevalue("postgres_url")
    return postgres


async def test_version_1_rows_survive_the_upgrade(url: str, tmp_path: pathlib.Path) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    old = await open_database(url, MIGRATIONS[:1], "token-srv")
    try:
        async with old.begin() as conn:
            meta = MetaData()
            tokens = await conn.run_sync(lambda c: Table("refresh_tokens", meta, autoload_with=c))
            revoked = await conn.run_sync(
                lambda c: Table("revoked_access_tokens", meta, autoload_with=c)
            )
            row = {"user_id": "1", "user_name": "thangn", "role": "user", "expires_at": later}
            row |= {"platform": "TOKEN_PLATFORM_WEB"}
            await conn.execute(
                tokens.insert(),
                [
                    {
                        **row,
                        "token_hash": refresh_token_hash("live"),
                        "family_id": "f1",
                        "revoked_at": None,
                    },
                    {
                        **row,
                        "token_hash": refresh_token_hash("ended"),
                        "family_id": "f2",
                        "revoked_at": datetime.now(UTC),
                    },
                ],
            )
            await conn.execute(revoked.insert().values(jti="old-jti", expires_at=later))
    finally:
        await old.dispose()

    engine = await open_database(url, MIGRATIONS, "token-srv")
    try:
        settings = JwtSettings.load(jwt_config("k1"), str(tmp_path))
        usecases = TokenUseCases(SqlTokenRepository(engine), lambda: settings)

        pair, subject = await usecases.refresh("live")
        page = await usecases.revocations(0, wait=0)

        assert subject == Subject("1", "thangn")
        assert (await usecases.verify(pair.access_token))["sub"] == "thangn"
        with pytest.raises(ServiceError, match="invalid, expired or revoked"):
            await usecases.refresh("ended")
        assert [e.jti for e in page.entries] == ["old-jti"]
        assert page.cursor > 0
        assert page.entries[0].expires_at.timestamp() > time.time()
    finally:
        await engine.dispose()
