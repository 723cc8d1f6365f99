"""user-srv's typed configuration: the shared sections plus database, argon2, login limits
and bootstrap."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from micro.config.model import Duration, Section, ServiceConfig
from micro.config.reload import Reload
from micro.db import DatabaseConfig
from micro.idempotency import IdempotencyConfig


class Argon2Config(Section):
    """argon2id cost: the defaults are OWASP's minimum (19 MiB, 2 passes, 1 lane)."""

    reload_policy = Reload.RESTART  # the hasher is built once

    time_cost: int = Field(default=2, ge=1, le=10)
    memory_kib: int = Field(default=19456, ge=8, le=1 << 20)
    parallelism: int = Field(default=1, ge=1, le=8)
    # Hashes running at once, so a login burst cannot starve the event loop.
    max_concurrency: int = Field(default=2, ge=1, le=64)
    # Hashes allowed to wait for a slot; beyond it VerifyPassword sheds at once
    # (RESOURCE_EXHAUSTED, overloaded) instead of queueing behind an attacker.
    max_waiting: int = Field(default=4, ge=0, le=1024)


class LoginLimitsConfig(Section):
    """Login budgets kept in the database, so every replica of every caller shares them.

    A budget is keyed by account and client (a known device, or all unknown clients
    together) and, separately, by client address. Reaching max_failures locks the key for
    a lockout that doubles with each lockout in a row, from first_lockout up to max_lockout;
    a success resets the client's key."""

    reload_policy = Reload.LIVE  # read on every VerifyPassword

    unknown_max_failures: int = Field(default=5, ge=1, le=1000)
    device_max_failures: int = Field(default=5, ge=1, le=1000)
    address_max_failures: int = Field(default=20, ge=1, le=100_000)
    first_lockout: Duration = timedelta(minutes=1)
    max_lockout: Duration = timedelta(hours=1)
    # Password checks in flight at once for one client (an account's unknown clients, or
    # one device); more fail at once (rate limited). Addresses have no such cap.
    max_in_flight: int = Field(default=1, ge=1, le=64)
    # A reservation older than this no longer counts as in flight (its replica died).
    stale_in_flight: Duration = timedelta(seconds=30)
    # Keys untouched this long (and not locked) are deleted, so keys stay bounded.
    forget_after: Duration = timedelta(days=1)

    @model_validator(mode="after")
    def _lockouts_ordered(self) -> LoginLimitsConfig:
        if self.first_lockout <= timedelta(0) or self.max_lockout < self.first_lockout:
            raise ValueError("need 0 < first_lockout <= max_lockout")
        return self


class BootstrapUser(Section):
    user_name: str
    password: SecretStr
    role: Literal["user", "admin"] = "user"


class UserSrvConfig(ServiceConfig):
    database: DatabaseConfig = DatabaseConfig()
    argon2: Argon2Config = Argon2Config()
    login_limits: LoginLimitsConfig = LoginLimitsConfig()
    # CreateUser keeps its outcomes per idempotency key.
    idempotency: IdempotencyConfig = IdempotencyConfig()
    # Created at start (and when the list changes) when missing; never overwritten.
    bootstrap_users: Annotated[tuple[BootstrapUser, ...], Reload.LIVE] = ()
