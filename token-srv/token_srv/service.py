"""Composition root of token-srv: database, keys, use cases and TokenService, wired to the
framework."""

from __future__ import annotations

from api.token_srv.v1 import token_pb2_grpc
from micro.app import ServiceContext, run
from micro.db import open_service_database
from micro.idempotency import OutcomeStore
from micro.registry.names import package_registry_name
from token_srv.config import JwtConfig, TokenSrvConfig
from token_srv.grpc_api import TokenServicer
from token_srv.migrations import MIGRATIONS
from token_srv.repository import SqlTokenRepository
from token_srv.usecases import JwtSettings, JwtSettingsHolder, TokenUseCases

NAME = package_registry_name(__name__)  # go-micro.<folder name>


async def compose(ctx: ServiceContext[TokenSrvConfig]) -> None:
    cfg = ctx.config.current
    engine = await open_service_database(ctx, cfg.database, MIGRATIONS)
    settings = JwtSettingsHolder(JwtSettings.load(cfg.jwt, cfg.database.data_dir))

    def use(jwt: JwtConfig) -> None:  # ValueError on unusable keys keeps the previous ones
        settings.current = JwtSettings.load(jwt, cfg.database.data_dir)

    ctx.config.follow(lambda c: c.jwt, use, what="jwt settings")
    tokens = TokenUseCases(SqlTokenRepository(engine), settings)
    outcomes = OutcomeStore(engine, ctx.config.view(lambda c: c.idempotency))
    servicer = TokenServicer(tokens, outcomes)
    ctx.add_grpc_service(token_pb2_grpc.add_TokenServiceServicer_to_server, servicer)


def main() -> None:
    run(name=NAME, config_model=TokenSrvConfig, compose=compose)
