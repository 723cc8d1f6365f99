"""device-srv's configuration: the database URL is a secret, never shown in reprs."""

from __future__ import annotations

import pathlib

from device_srv.config import DeviceSrvConfig
from micro.config import load_config

PASSWORD = "s3cret-pg-password"  # looked for in every rendering
URL = f"postgresql+asyncpg://device-srv:{PASSWORD}@db.example:5432/devices"


def test_the_database_url_never_shows_in_reprs_or_dumps(tmp_path: pathlib.Path) -> None:
    (tmp_path / "config.yaml").write_text(f"database:\n  url: {URL}\n")
    cfg = load_config(
        DeviceSrvConfig, service="go-micro.device-srv", config_dir=tmp_path, env={}
    ).current
    assert cfg.database.url.get_secret_value() == URL
    shown = [
        repr(cfg),
        str(cfg),
        repr(cfg.database),
        str(cfg.database.url),
        str(cfg.model_dump()),
        cfg.model_dump_json(),
    ]
    assert all(PASSWORD not in text for text in shown)


def test_the_default_url_is_the_sqlite_file() -> None:
    database = DeviceSrvConfig().database
    assert database.url_for("device-srv") == "sqlite+aiosqlite:///.data/device-srv.db"
