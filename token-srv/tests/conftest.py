"""Fixtures shared by token-srv's tests: its schema, freshly generated keys, its stub; the
database and the loopback server come from micro.testing.fixtures."""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from api.token_srv.v1 import token_pb2_grpc
from micro.idempotency import IdempotencyConfig, OutcomeStore
from micro.testing.fixtures import ServeGrpc, schema_fixture
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


schema = schema_fixture(MIGRATIONS, "token-srv")


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
async def token_stub(
    usecases: TokenUseCases, engine: AsyncEngine, serve_grpc: ServeGrpc
) -> TokenServiceAsyncStub:
    """token-srv's TokenService on the framework's real gRPC server, on a loopback port."""
    servicer = TokenServicer(usecases, OutcomeStore(engine, IdempotencyConfig))
    channel = await serve_grpc(token_pb2_grpc.add_TokenServiceServicer_to_server, servicer)
    return token_pb2_grpc.TokenServiceStub(channel)
