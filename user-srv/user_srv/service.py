"""Composition root of user-srv: database, hasher, use cases and UserService, wired to the
framework."""

from __future__ import annotations

from api.user_srv.v1 import user_pb2_grpc
from micro.app import ServiceContext, run
from micro.db import open_service_database
from micro.errors import ServiceError
from user_srv.config import BootstrapUser, UserSrvConfig
from user_srv.migrations import MIGRATIONS
from user_srv.passwords import Argon2PasswordHasher
from user_srv.repository import SqlUserRepository
from user_srv.servicer import SERVICE_NAME, UserServicer
from user_srv.usecases import UserUseCases

NAME = "go-micro.user-srv"


async def compose(ctx: ServiceContext[UserSrvConfig]) -> None:
    cfg = ctx.config.current
    engine = await open_service_database(ctx, cfg.database, MIGRATIONS)
    hasher = Argon2PasswordHasher(cfg.argon2)

    async def close_hasher() -> None:
        hasher.close()

    ctx.on_shutdown(close_hasher)
    users = UserUseCases(SqlUserRepository(engine), hasher)
    await users.bootstrap(cfg.bootstrap_users)

    async def bootstrap(wanted: tuple[BootstrapUser, ...]) -> None:
        try:
            created = await users.bootstrap(wanted)
        except ServiceError as error:
            ctx.logger.error("bootstrap users not applied: %s", error.message)
            return
        ctx.logger.info("bootstrap users applied: %d created", created)

    ctx.config.subscribe(lambda c: c.bootstrap_users, bootstrap)
    ctx.add_grpc_service(
        user_pb2_grpc.add_UserServiceServicer_to_server, UserServicer(users), SERVICE_NAME
    )


def main() -> None:
    run(name=NAME, config_model=UserSrvConfig, compose=compose)
