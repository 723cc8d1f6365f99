"""A throwaway PostgreSQL server for tests: initdb and pg_ctl from this machine, in a
temporary folder, on a free loopback port; stopped and deleted on exit."""

from __future__ import annotations

import contextlib
import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

from micro.testing.processes import free_port

# Another process may take the free port between our look and the server's bind.
_START_ATTEMPTS = 3


def _as_root() -> bool:
    return os.geteuid() == 0


def _command(binary: str) -> list[str] | None:
    """How to run a PostgreSQL binary here: as the postgres user when we are root
    (initdb refuses to run as root)."""
    path = shutil.which(binary)
    if path is None or not _as_root():
        return None if path is None else [path]
    runuser = shutil.which("runuser")
    return None if runuser is None else [runuser, "-u", "postgres", "--", path]


def postgres_unavailable_reason() -> str | None:
    """Why no throwaway server can start here (a test's skip reason), or None."""
    if _command("initdb") is None or _command("pg_ctl") is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    if _as_root():
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the server"
    return None


@contextlib.contextmanager
def throwaway_postgres(prefix: str = "postgres-") -> Iterator[str]:
    """Start a server with trust authentication; yield its URL
    (postgresql+asyncpg://postgres@127.0.0.1:<port>/postgres)."""
    reason = postgres_unavailable_reason()
    initdb, pg_ctl = _command("initdb"), _command("pg_ctl")
    if reason is not None or initdb is None or pg_ctl is None:
        raise RuntimeError(reason or "PostgreSQL server binaries are not usable")
    # Not under pytest's tmp folder: as root that one is closed to the postgres user.
    root = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    data, log = root / "data", root / "log"
    try:
        if _as_root():
            shutil.chown(root, user="postgres")
        _run([*initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"])
        port = _start(pg_ctl, data, root, log)
        try:
            yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(  # noqa: S603 - the machine's pg_ctl, our own arguments
                [*pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                check=False,
                capture_output=True,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _start(pg_ctl: list[str], data: pathlib.Path, root: pathlib.Path, log: pathlib.Path) -> int:
    """Start the server on a free port (a new one when it was taken); answer the port."""
    failure = ""
    for _ in range(_START_ATTEMPTS):
        port = free_port()
        # -F: no fsync, the data is thrown away; -k: the socket in our folder, not /run.
        options = f"-h 127.0.0.1 -p {port} -k {root} -F"
        started = subprocess.run(  # noqa: S603 - the machine's pg_ctl, our own arguments
            [*pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start"],
            check=False,
            capture_output=True,
        )
        if started.returncode == 0:
            return port
        failure = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"PostgreSQL did not start:\n{failure}")


def _run(command: list[str]) -> None:
    done = subprocess.run(command, check=False, capture_output=True)  # noqa: S603 - ours
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed:\n{done.stderr.decode(errors='replace')[-2000:]}"
        )


@contextlib.contextmanager
def throwaway_postgres_or_skip(prefix: str = "postgres-") -> Iterator[str]:
    """throwaway_postgres for a pytest fixture: the test is skipped, naming the reason,
    where no server can start here."""
    import pytest  # only tests call this; the services' images have no pytest

    reason = postgres_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with throwaway_postgres(prefix=prefix) as url:
        yield url
