"""A de-duplicating queue of object keys, reconciled one at a time, level-triggered."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 5.0)


class WorkQueue:
    """Keys wait here until a worker reconciles them; a key queued twice runs once."""

    def __init__(self, name: str, reconcile: Callable[[str], Awaitable[None]]) -> None:
        self.name = name
        self._reconcile = reconcile
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._pending: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: set[asyncio.TimerHandle] = set()

    def add(self, key: str) -> None:
        if key not in self._pending:
            self._pending.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: str, delay_s: float) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            self.add(key)

        handle = loop.call_later(delay_s, fire)
        self._timers.add(handle)

    async def run(self) -> None:
        try:
            while True:
                key = await self._queue.get()
                self._pending.discard(key)
                try:
                    await self._reconcile(key)
                    self._failures.pop(key, None)
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    failures = self._failures.get(key, 0)
                    self._failures[key] = failures + 1
                    delay = RETRY_DELAYS_S[min(failures, len(RETRY_DELAYS_S) - 1)]
                    if isinstance(error, ApiException) and error.status == 409:
                        log.debug("%s %s: conflict, retrying", self.name, key)
                    else:
                        log.warning(
                            "%s %s failed (%s); retrying in %.1fs", self.name, key, error, delay
                        )
                    self.add_after(key, delay)
        finally:
            for handle in self._timers:
                handle.cancel()
