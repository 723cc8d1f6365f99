"""micro.db as a service uses it: the `database` section, and open_service_database
opening the migrated database through the ServiceContext and closing it at shutdown."""

from __future__ import annotations

import pathlib
from collections.abc import Awaitable, Callable

import pytest
import yaml
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from micro.app import App, ServiceContext
from micro.config import load_config
from micro.config.model import ServiceConfig
from micro.config.reload import Reload, walk_fields
from micro.db import DatabaseConfig, open_service_database, schema_versions

from .db_worker import MIGRATIONS

NAME = "go-micro.db-srv"
PASSWORD = "s3cret-pg-password"  # looked for in every rendering


class DbSrvConfig(ServiceConfig):
    database: DatabaseConfig = DatabaseConfig()


def test_the_url_is_the_configured_one_or_a_file_in_the_data_dir() -> None:
    configured = DatabaseConfig(url=SecretStr("postgresql+asyncpg://db/app"), data_dir="/data")
    assert configured.url_for("app") == "postgresql+asyncpg://db/app"
    assert DatabaseConfig(data_dir="/data").url_for("app") == "sqlite+aiosqlite:////data/app.db"
    assert DatabaseConfig().url_for("app") == "sqlite+aiosqlite:///.data/app.db"


def test_the_url_never_shows_and_every_field_needs_a_restart(tmp_path: pathlib.Path) -> None:
    url = f"postgresql+asyncpg://db-srv:{PASSWORD}@db.example:5432/app"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"database": {"url": url}}))
    cfg = load_config(DbSrvConfig, service=NAME, config_dir=tmp_path, env={}).current
    assert cfg.database.url.get_secret_value() == url
    shown = [repr(cfg), str(cfg.database), str(cfg.model_dump()), cfg.model_dump_json()]
    assert all(PASSWORD not in text for text in shown)
    assert {f.dotted: f.policy for f in walk_fields(DatabaseConfig)} == {
        "url": Reload.RESTART,
        "data_dir": Reload.RESTART,
    }


Compose = Callable[[ServiceContext[DbSrvConfig]], Awaitable[None]]


def app_on(tmp_path: pathlib.Path, compose: Compose) -> App[DbSrvConfig]:
    """An in-process service named NAME whose database.data_dir is tmp_path/data."""
    config = {
        "registry": {"type": "static"},
        "server": {"admin": {"addr": "127.0.0.1:0"}},
        "shutdown": {"drain_delay": "0s", "grace_period": "1s"},
        "database": {"data_dir": str(tmp_path / "data")},
    }
    config_dir = tmp_path / "configs"
    config_dir.mkdir()
    (config_dir / "config.yaml").write_text(yaml.safe_dump(config))
    return App(NAME, DbSrvConfig, compose, version="test", config_dir=config_dir, env={})


def wal_file(tmp_path: pathlib.Path) -> pathlib.Path:
    # SQLite keeps a WAL file beside the database while a connection is open and removes
    # it when the last one closes: its absence shows the engine let go of the file.
    return tmp_path / "data" / "db-srv.db-wal"


async def test_a_service_opens_its_migrated_database_and_closes_it_at_shutdown(
    tmp_path: pathlib.Path, restore_logging: None
) -> None:
    opened: list[AsyncEngine] = []

    async def compose(ctx: ServiceContext[DbSrvConfig]) -> None:
        opened.append(await open_service_database(ctx, ctx.config.current.database, MIGRATIONS))

    app = app_on(tmp_path, compose)
    await app.start()
    try:
        (engine,) = opened
        async with engine.connect() as conn:
            assert await conn.run_sync(schema_versions) == [1, 2]
        # The file is named after the service's short name, in data_dir.
        assert (tmp_path / "data" / "db-srv.db").is_file()
        assert wal_file(tmp_path).is_file()
    finally:
        await app.shutdown()
    assert not wal_file(tmp_path).exists()


async def test_a_start_that_fails_after_opening_closes_the_database(
    tmp_path: pathlib.Path, restore_logging: None
) -> None:
    async def compose(ctx: ServiceContext[DbSrvConfig]) -> None:
        await open_service_database(ctx, ctx.config.current.database, MIGRATIONS)
        assert wal_file(tmp_path).is_file()
        raise RuntimeError("a later start-up step fails")

    with pytest.raises(RuntimeError, match="a later start-up step fails"):
        await app_on(tmp_path, compose).start()
    assert not wal_file(tmp_path).exists()
