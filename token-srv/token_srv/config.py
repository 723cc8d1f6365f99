"""token-srv's typed configuration: the shared sections plus database and jwt."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from micro.config.model import Duration, Section, ServiceConfig
from micro.config.reload import Reload
from micro.db import DatabaseConfig
from micro.idempotency import IdempotencyConfig


class JwtKeyConfig(Section):
    """One key. EdDSA and RS256 take private_key_pem (PKCS#8 PEM); HS256 takes secret."""

    kid: str = Field(min_length=1, max_length=64)
    alg: Literal["EdDSA", "RS256", "HS256"] = "EdDSA"
    private_key_pem: SecretStr = SecretStr("")
    secret: SecretStr = SecretStr("")

    @model_validator(mode="after")
    def _parses(self) -> JwtKeyConfig:
        # Imported here: keys.py needs this module for its types.
        from token_srv.keys import load_key

        load_key(self)  # a bad key is refused with the config update that brought it
        return self


class JwtConfig(Section):
    reload_policy = Reload.LIVE  # token-srv reloads its keys and settings on a change

    issuer: str = "go-micro.token-srv"
    audience: tuple[str, ...] = ("go-micro",)
    access_ttl: Duration = timedelta(minutes=15)
    refresh_ttl: Duration = timedelta(days=7)  # sliding: each refresh restarts it
    # Absolute: a session (a login and all its refreshes) ends this long after the login.
    session_lifetime: Duration = timedelta(hours=12)
    leeway: Duration = timedelta(seconds=5)  # clock skew allowed between services
    # The first key signs; all of them verify (rotation). Fed by the Secret token-srv-jwt-keys.
    keys: tuple[JwtKeyConfig, ...] = ()
    # With no keys configured: an Ed25519 key generated on first run into this file
    # (relative to database.data_dir). Local development only; empty disables it.
    dev_key_file: str = ""

    @model_validator(mode="after")
    def _unique_kids(self) -> JwtConfig:
        kids = [k.kid for k in self.keys]
        if len(set(kids)) != len(kids):
            raise ValueError(f"jwt.keys: kid values must be unique, got {kids}")
        if not self.audience:
            raise ValueError("jwt.audience: at least one audience is needed")
        return self


class TokenSrvConfig(ServiceConfig):
    database: DatabaseConfig = DatabaseConfig()
    jwt: JwtConfig = JwtConfig()
    # GenerateToken and RefreshToken keep their outcomes per idempotency key.
    idempotency: IdempotencyConfig = IdempotencyConfig()
