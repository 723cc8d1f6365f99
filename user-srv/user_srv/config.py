"""user-srv's typed configuration: the shared sections plus database, argon2 and bootstrap."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr

from micro.config.model import Section, ServiceConfig
from micro.config.reload import Reload
from micro.db import DatabaseConfig


class Argon2Config(Section):
    """argon2id cost: the defaults are OWASP's minimum (19 MiB, 2 passes, 1 lane)."""

    reload_policy = Reload.RESTART  # the hasher is built once

    time_cost: int = Field(default=2, ge=1, le=10)
    memory_kib: int = Field(default=19456, ge=8, le=1 << 20)
    parallelism: int = Field(default=1, ge=1, le=8)
    # Hashes running at once; the rest wait, so a login burst cannot starve the event loop.
    max_concurrency: int = Field(default=2, ge=1, le=64)


class BootstrapUser(Section):
    user_name: str
    password: SecretStr
    role: Literal["user", "admin"] = "user"


class UserSrvConfig(ServiceConfig):
    database: DatabaseConfig = DatabaseConfig()
    argon2: Argon2Config = Argon2Config()
    # Created at start (and when the list changes) when missing; never overwritten.
    bootstrap_users: Annotated[tuple[BootstrapUser, ...], Reload.LIVE] = ()
