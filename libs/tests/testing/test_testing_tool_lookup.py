"""Where the tests find the tools `make` provides: PostgreSQL's server binaries where
Debian installs them (off PATH), and uv where the Makefile resolved it."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from micro.testing.postgres import (
    DEBIAN_POSTGRESQL,
    postgres_bindir,
    postgres_unavailable_reason,
    throwaway_postgres,
)
from micro.testing.tools import uv_command


def executables(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("#!/bin/sh\nexit 0\n")
        (folder / name).chmod(0o755)
    return folder


def pg_config_reporting(folder: Path, bindir: Path) -> Path:
    """A pg_config in `folder` whose --bindir answers `bindir`."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "pg_config"
    script.write_text(f"#!/bin/sh\necho {bindir}\n")
    script.chmod(0o755)
    return folder


def test_on_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = executables(tmp_path / "bin", "initdb", "pg_ctl")
    debian = executables(tmp_path / "debian" / "16" / "bin", "initdb", "pg_ctl")
    monkeypatch.setenv("PATH", str(on_path))
    assert postgres_bindir(debian.parents[1]) == on_path


def test_pg_config_bindir_comes_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = executables(tmp_path / "server", "initdb", "pg_ctl")
    debian = executables(tmp_path / "debian" / "16" / "bin", "initdb", "pg_ctl")
    monkeypatch.setenv("PATH", str(pg_config_reporting(tmp_path / "bin", server)))
    assert postgres_bindir(debian.parents[1]) == server


def test_a_pg_config_without_a_server_falls_back_to_the_highest_debian_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libpq-dev's pg_config reports /usr/bin, where no initdb is."""
    client_only = executables(tmp_path / "usr-bin", "psql")
    debian = tmp_path / "debian"
    for version in ("9.6", "15", "16"):
        executables(debian / version / "bin", "initdb", "pg_ctl")
    executables(debian / "17" / "bin", "initdb")  # a partial install: no pg_ctl
    monkeypatch.setenv("PATH", str(pg_config_reporting(client_only, client_only)))
    assert postgres_bindir(debian) == debian / "16" / "bin"


def test_nothing_found_answers_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert postgres_bindir(tmp_path / "no-debian") is None


@pytest.mark.postgres
def test_a_server_starts_with_the_system_path_of_a_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH=/usr/bin:/bin holds neither initdb nor runuser (sbin) on Debian."""
    if not any(DEBIAN_POSTGRESQL.glob("*/bin/initdb")):
        pytest.skip(f"PostgreSQL is not installed from Debian's package ({DEBIAN_POSTGRESQL})")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert postgres_unavailable_reason() is None

    async def answer(url: str) -> object:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return (await connection.execute(text("SELECT 41 + 1"))).scalar_one()
        finally:
            await engine.dispose()

    with throwaway_postgres(prefix="lookup-postgres-") as url:
        assert asyncio.run(answer(url)) == 42


def test_uv_is_the_one_make_resolved_even_off_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Makefile exports UV (and `uv run` sets it): no uv on PATH is needed."""
    command = uv_command()
    monkeypatch.setenv("PATH", str(tmp_path))
    if len(command) == 1:
        monkeypatch.setenv("UV", command[0])
    assert uv_command() == command
    done = subprocess.run([*command, "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("uv ")


def test_without_uv_the_error_says_how_to_run_the_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UV", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    if importlib.util.find_spec("uv") is not None:
        assert uv_command() == [sys.executable, "-m", "uv"]
    else:
        with pytest.raises(LookupError, match="make test"):
            uv_command()
