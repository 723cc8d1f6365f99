"""Fixtures shared by token-srv's tests: real SQLite files and freshly generated keys."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from token_srv.config import JwtConfig, JwtKeyConfig
from token_srv.database import open_database
from token_srv.migrations import MIGRATIONS
from token_srv.repository import SqlTokenRepository
from token_srv.usecases import JwtSettings, TokenUseCases


def ed25519_pem() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def jwt_config(*kids: str) -> JwtConfig:
    keys = tuple(
        JwtKeyConfig(kid=kid, alg="EdDSA", private_key_pem=SecretStr(ed25519_pem()))
        for kid in kids or ("k1",)
    )
    return JwtConfig(issuer="go-micro.token-srv", audience=("go-micro",), keys=keys)


@pytest.fixture
def sqlite_url(tmp_path: pathlib.Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/tokens.db"


@pytest.fixture
async def engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await open_database(sqlite_url, MIGRATIONS, "token-srv")
    yield engine
    await engine.dispose()


@pytest.fixture
def repository(engine: AsyncEngine) -> SqlTokenRepository:
    return SqlTokenRepository(engine)


@pytest.fixture
def settings(tmp_path: pathlib.Path) -> JwtSettings:
    return JwtSettings.load(jwt_config("k1", "k0"), str(tmp_path))


@pytest.fixture
def usecases(repository: SqlTokenRepository, settings: JwtSettings) -> TokenUseCases:
    return TokenUseCases(repository, lambda: settings)
