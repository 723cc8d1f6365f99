"""Composition root of token-srv: database, keys, use cases and TokenService, wired to the
framework."""

from __future__ import annotations

from api.token_srv.v1 import token_pb2_grpc
from micro.app import ServiceContext, run
from micro.db import open_service_database
from token_srv.config import JwtConfig, TokenSrvConfig
from token_srv.migrations import MIGRATIONS
from token_srv.repository import SqlTokenRepository
from token_srv.servicer import SERVICE_NAME, TokenServicer
from token_srv.usecases import JwtSettingsHolder, TokenUseCases

NAME = "go-micro.token-srv"


async def compose(ctx: ServiceContext[TokenSrvConfig]) -> None:
    cfg = ctx.config.current
    engine = await open_service_database(ctx, cfg.database, MIGRATIONS)
    # Keys are parsed here and on every change of the jwt section, never per call.
    settings = JwtSettingsHolder(cfg.jwt, cfg.database.data_dir)

    def reload(jwt: JwtConfig) -> None:
        try:
            settings.reload(jwt)
        except ValueError as error:
            ctx.logger.error("jwt settings not applied, keeping the previous ones: %s", error)
            return
        ctx.logger.info("jwt settings applied: signing key %s", settings().keys.signing.kid)

    ctx.config.subscribe(lambda c: c.jwt, reload)
    tokens = TokenUseCases(SqlTokenRepository(engine), settings)
    ctx.add_grpc_service(
        token_pb2_grpc.add_TokenServiceServicer_to_server, TokenServicer(tokens), SERVICE_NAME
    )


def main() -> None:
    run(name=NAME, config_model=TokenSrvConfig, compose=compose)
