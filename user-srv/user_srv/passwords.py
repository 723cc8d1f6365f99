"""argon2id hashing off the event loop, with a bounded number of hashes at once and a
bounded wait: beyond it a hash is shed rather than queued."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Protocol, TypeVar

from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError

from micro.errors import overloaded
from user_srv.config import Argon2Config

T = TypeVar("T")


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> bool: ...

    async def burn(self, password: str) -> None:
        """Spend the time of one verification, for a user that does not exist."""
        ...

    def needs_rehash(self, password_hash: str) -> bool: ...


def argon2id(cfg: Argon2Config) -> Argon2Hasher:
    """The synchronous argon2id hasher with cfg's cost parameters."""
    return Argon2Hasher(
        time_cost=cfg.time_cost,
        memory_cost=cfg.memory_kib,
        parallelism=cfg.parallelism,
        type=Type.ID,
    )


class Argon2PasswordHasher:
    """argon2-cffi releases the GIL while hashing, so a small thread pool runs hashes in
    parallel; the semaphore keeps waiting requests in asyncio, where they can be cancelled
    before they ever occupy a worker. At most max_waiting wait: a burst cannot build a
    queue that every other login has to sit behind."""

    def __init__(self, cfg: Argon2Config) -> None:
        self._hasher = argon2id(cfg)
        self._pool = ThreadPoolExecutor(cfg.max_concurrency, thread_name_prefix="argon2")
        self._slots = asyncio.Semaphore(cfg.max_concurrency)
        self._max_waiting = cfg.max_waiting
        self._waiting = 0
        # Verified against for unknown users, so they cost what a wrong password costs.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._slots.locked():
            if self._waiting >= self._max_waiting:
                raise overloaded("every password slot is busy: try again", timedelta(seconds=1))
            self._waiting += 1
            try:
                await self._slots.acquire()
            finally:
                self._waiting -= 1
        else:
            await self._slots.acquire()
        loop = asyncio.get_running_loop()
        try:
            work = self._pool.submit(fn)
        except BaseException:
            self._slots.release()
            raise
        # The slot frees when the hash is done, not when its caller gives up: a cancelled
        # call's hash still runs, and must not let another one queue in the pool.
        work.add_done_callback(lambda _: _call_soon(loop, self._slots.release))
        return await asyncio.wrap_future(work)

    async def hash(self, password: str) -> str:
        return await self._run(lambda: self._hasher.hash(password))

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self._run(lambda: self._check(password_hash, password))

    async def burn(self, password: str) -> None:
        await self.verify(self._dummy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def _check(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
    """Run callback on loop from a worker thread; nothing once the loop is closed."""
    with contextlib.suppress(RuntimeError):  # the loop closed at shutdown
        loop.call_soon_threadsafe(callback)
