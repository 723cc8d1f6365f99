"""Fixtures shared by token-srv's tests: real SQLite files and freshly generated keys."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from api.token_srv.v1 import token_pb2_grpc
from micro.db import open_database
from micro.descriptors import served_service
from micro.testing.grpc_loopback import loopback_grpc_channel
from micro.testing.postgres import throwaway_postgres_or_skip
from token_srv.config import JwtConfig, JwtKeyConfig
from token_srv.grpc_api import TokenServicer
from token_srv.migrations import MIGRATIONS
from token_srv.repository import SqlTokenRepository
from token_srv.usecases import JwtSettings, TokenUseCases

if TYPE_CHECKING:
    from api.token_srv.v1.token_pb2_grpc import TokenServiceAsyncStub


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


@pytest.fixture
async def token_stub(usecases: TokenUseCases) -> AsyncIterator[TokenServiceAsyncStub]:
    """token-srv's TokenService on the framework's real gRPC server, on a loopback port."""
    add = token_pb2_grpc.add_TokenServiceServicer_to_server
    async with loopback_grpc_channel(
        (add, TokenServicer(usecases), served_service(add).full_name)
    ) as channel:
        yield token_pb2_grpc.TokenServiceStub(channel)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server for this session, or a skip."""
    with throwaway_postgres_or_skip(prefix="token-srv-postgres-") as url:
        yield url
