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
SERVER_BINARIES = ("initdb", "pg_ctl")
# Debian's postgresql package installs the server binaries here, not on PATH.
DEBIAN_POSTGRESQL = pathlib.Path("/usr/lib/postgresql")
# runuser is in sbin, which a user's PATH (e.g. /usr/bin:/bin) may leave out.
_SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"
INSTALL_HINT = "`make test` installs it as root with apt-get; elsewhere: apt-get install postgresql"


def postgres_bindir(debian_root: pathlib.Path = DEBIAN_POSTGRESQL) -> pathlib.Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else `pg_config --bindir`, else
    the highest version under Debian's /usr/lib/postgresql/<version>/bin."""
    on_path = {shutil.which(binary) for binary in SERVER_BINARIES}
    folders = {pathlib.Path(found).parent for found in on_path if found is not None}
    if None not in on_path and len(folders) == 1:
        return folders.pop()
    candidates = [_pg_config_bindir(), *_debian_bindirs(debian_root)]
    return next((folder for folder in candidates if folder and _holds_server(folder)), None)


def _holds_server(folder: pathlib.Path) -> bool:
    return all(os.access(folder / binary, os.X_OK) for binary in SERVER_BINARIES)


def _pg_config_bindir() -> pathlib.Path | None:
    # libpq-dev's pg_config answers /usr/bin even where no server is installed there.
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    done = subprocess.run(  # noqa: S603 - the machine's pg_config, our own argument
        [pg_config, "--bindir"], capture_output=True, text=True, check=False, timeout=30
    )
    return pathlib.Path(done.stdout.strip()) if done.returncode == 0 else None


def _debian_bindirs(debian_root: pathlib.Path) -> list[pathlib.Path]:
    """<root>/<version>/bin, highest version first (numerically: 16 before 9.6)."""

    def version(folder: pathlib.Path) -> tuple[int, ...]:
        parts = folder.parent.name.split(".")
        return tuple(int(part) for part in parts) if all(p.isdigit() for p in parts) else ()

    return sorted(debian_root.glob("*/bin"), key=version, reverse=True)


def _as_root() -> bool:
    return os.geteuid() == 0


def _command(binary: str) -> list[str] | None:
    """How to run a PostgreSQL server binary here: as the postgres user when we are root
    (initdb refuses to run as root)."""
    folder = postgres_bindir()
    if folder is None:
        return None
    path = str(folder / binary)
    if not _as_root():
        return [path]
    search = os.pathsep.join([os.environ.get("PATH", ""), _SBIN_PATH])
    runuser = shutil.which("runuser", path=search)
    return None if runuser is None else [runuser, "-u", "postgres", "--", path]


def postgres_unavailable_reason() -> str | None:
    """Why no throwaway server can start here (a test's skip reason), or None."""
    if postgres_bindir() is None:
        return f"PostgreSQL server binaries (initdb, pg_ctl) are not installed: {INSTALL_HINT}"
    if _as_root():
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the server"
        if _command("pg_ctl") is None:
            return "running as root and runuser (util-linux) is not installed"
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
