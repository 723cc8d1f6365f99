"""One process on a database shared with others, for the concurrency tests of micro.db
(test_db_migrations.py, test_db_sqlite_concurrency.py), and the migrations they share.

    python db_worker.py migrate <url> <go-file>
    python db_worker.py write <url> <go-file> <writer> <count>

run_together() starts several and releases them at once.
A worker prints "ready" once set up, then waits for <go-file> so that all workers start
their real work at the same moment. Exit 0 is success; any error (such as "database is
locked") exits 1 with its traceback.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Sequence

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from micro.db import Migration, create_engine, migrate, use_wal

LOCK_NAME = "micro-db-tests"
GO_TIMEOUT_S = 30.0
RUN_TIMEOUT_S = 90.0


# Every step fails when applied twice: a plain CREATE TABLE and a primary-key row.
def _v1_steps(conn: Connection) -> None:
    conn.execute(text("CREATE TABLE steps (version INTEGER PRIMARY KEY, pid INTEGER NOT NULL)"))
    conn.execute(text("INSERT INTO steps VALUES (1, :pid)"), {"pid": os.getpid()})


def _v2_writes(conn: Connection) -> None:
    conn.execute(
        text(
            "CREATE TABLE writes (writer VARCHAR(20) NOT NULL, n INTEGER NOT NULL,"
            " PRIMARY KEY (writer, n))"
        )
    )
    conn.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, total INTEGER NOT NULL)"))
    conn.execute(text("INSERT INTO counter VALUES (1, 0)"))
    conn.execute(text("INSERT INTO steps VALUES (2, :pid)"), {"pid": os.getpid()})


MIGRATIONS = (
    Migration(1, "steps table", _v1_steps),
    Migration(2, "writes and counter tables", _v2_writes),
)
TABLES = ("steps", "writes", "counter", "schema_version")


async def write_rows(engine: AsyncEngine, writer: str, count: int) -> None:
    """`count` transactions, each adding a row of its own and bumping the shared counter
    (a read-modify-write that loses updates unless writers are serialised)."""
    for n in range(count):
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO writes VALUES (:writer, :n)"), {"writer": writer, "n": n}
            )
            await conn.execute(text("UPDATE counter SET total = total + 1 WHERE id = 1"))


def _wait_for(go: pathlib.Path) -> None:
    print("ready", flush=True)
    deadline = time.monotonic() + GO_TIMEOUT_S
    while not go.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{go} did not appear")
        time.sleep(0.005)


async def main(action: str, url: str, go: pathlib.Path, *rest: str) -> None:
    engine = create_engine(url)
    try:
        if action == "migrate":
            _wait_for(go)
            await use_wal(engine)
            await migrate(engine, MIGRATIONS, LOCK_NAME)
        elif action == "write":
            writer, count = rest
            await use_wal(engine)
            await migrate(engine, MIGRATIONS, LOCK_NAME)  # opens the connection up front
            _wait_for(go)
            await write_rows(engine, writer, int(count))
        else:
            raise ValueError(f"unknown action {action!r}")
    finally:
        await engine.dispose()


def run_together(workers: Sequence[Sequence[str]], go: pathlib.Path) -> list[tuple[int, str]]:
    """Start one worker process per argument list (action, url, go-file, ...), release
    them together once all are ready; answer each one's exit code and error output."""
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for args in workers
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            process.stdout.readline()  # "ready", or nothing when it failed before
        go.touch()
        results = []
        for process in processes:
            _, errors = process.communicate(timeout=RUN_TIMEOUT_S)
            results.append((process.returncode, errors.decode(errors="replace")[-3000:]))
        return results
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


if __name__ == "__main__":
    action, url, go, *rest = sys.argv[1:]
    asyncio.run(main(action, url, pathlib.Path(go), *rest))
