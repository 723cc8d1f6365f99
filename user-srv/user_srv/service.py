"""Composition root of user-srv: database, hasher, use cases and UserService, wired to the
framework."""

from __future__ import annotations

import time

from api.user_srv.v1 import user_pb2_grpc
from micro.app import ServiceContext, run
from micro.db import open_service_database
from micro.idempotency import OutcomeStore
from micro.registry.names import package_registry_name
from user_srv.attempts import LoginBudgets
from user_srv.config import UserSrvConfig
from user_srv.grpc_api import UserServicer
from user_srv.migrations import MIGRATIONS
from user_srv.passwords import Argon2PasswordHasher
from user_srv.repository import SqlUserRepository
from user_srv.usecases import UserUseCases

NAME = package_registry_name(__name__)  # go-micro.<folder name>


async def compose(ctx: ServiceContext[UserSrvConfig]) -> None:
    cfg = ctx.config.current
    engine = await open_service_database(ctx, cfg.database, MIGRATIONS)
    hasher = Argon2PasswordHasher(cfg.argon2)

    async def close_hasher() -> None:
        hasher.close()

    ctx.on_shutdown(close_hasher)
    # Wall-clock time: the budgets' rows are shared by replicas on different hosts.
    budgets = LoginBudgets(engine, ctx.config.view(lambda c: c.login_limits), time.time)
    users = UserUseCases(SqlUserRepository(engine), hasher, budgets)
    await users.bootstrap(cfg.bootstrap_users)
    ctx.config.follow(lambda c: c.bootstrap_users, users.bootstrap, what="bootstrap users")
    outcomes = OutcomeStore(engine, ctx.config.view(lambda c: c.idempotency))
    servicer = UserServicer(users, outcomes)
    ctx.add_grpc_service(user_pb2_grpc.add_UserServiceServicer_to_server, servicer)


def main() -> None:
    run(name=NAME, config_model=UserSrvConfig, compose=compose)
