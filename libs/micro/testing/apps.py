"""A service's App inside a test, composed as `python -m <package>` composes it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import yaml

from micro.app import App, Compose
from micro.config.model import ServiceConfig

C = TypeVar("C", bound=ServiceConfig)
ADMIN_ADDR = "MICRO__SERVER__ADMIN__ADDR"
# A test App has no projected tokens: identity is off unless the test turns it on.
IDENTITY_OFF = {"MICRO__IDENTITY__MODE": "off"}


def config_folder(folder: Path, config: dict[str, Any]) -> Path:
    """`folder`, created, with `config` as its config.yaml: a service's local config."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


@contextlib.asynccontextmanager
async def running_app(
    name: str,
    config_model: type[C],
    compose: Compose[C],
    *,
    config_dir: Path,
    env: dict[str, str] | None = None,
) -> AsyncIterator[App[C]]:
    """The App started on the config files in `config_dir` and `env` (none of this
    process's environment); shut down on exit, also after a start that failed, and a
    test may shut it down itself first. Its admin port is a free loopback one unless
    `env` names another: every service has one, and two Apps must not share it. Caller
    identity is off unless `env` turns it on: a test App has no projected tokens."""
    env = {ADMIN_ADDR: "127.0.0.1:0", **IDENTITY_OFF, **(env or {})}
    app = App(name, config_model, compose, config_dir=config_dir, env=env)
    try:
        await app.start()
        yield app
    finally:
        await app.shutdown()
