"""Keep the cyclic garbage collector away from the stored objects.

The store holds every object as a tree of dicts and lists: hundreds of thousands of
container objects that never form cycles (reference counting frees them) but that every
full collection scans, pausing the event loop with a few thousand pods and delaying
every watch event behind it. After writes, the live objects are frozen
(`gc.freeze()`: moved out of the collector's generations); once writes have been quiet
for a while, or at the latest every few minutes, they are unfrozen and collected once,
so cyclic garbage that was frozen with them does not accumulate.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable

FREEZE_EVERY_S = 1.0
FULL_COLLECT_AFTER_QUIET_S = 60.0
FULL_COLLECT_AT_LEAST_EVERY_S = 300.0


async def keep_store_out_of_gc(current_version: Callable[[], int]) -> None:
    """Run until cancelled; current_version is the store's resourceVersion."""
    loop = asyncio.get_running_loop()
    frozen_at = current_version()
    collected_at = frozen_at
    quiet_since = last_full = loop.time()
    while True:
        await asyncio.sleep(FREEZE_EVERY_S)
        version = current_version()
        now = loop.time()
        quiet = version == frozen_at and now - quiet_since >= FULL_COLLECT_AFTER_QUIET_S
        overdue = now - last_full >= FULL_COLLECT_AT_LEAST_EVERY_S
        if version != collected_at and (quiet or overdue):
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            collected_at = frozen_at = version
            last_full = now
        elif version != frozen_at:
            gc.freeze()
            frozen_at, quiet_since = version, now


@contextlib.asynccontextmanager
async def gc_policy(current_version: Callable[[], int]) -> AsyncIterator[None]:
    task = asyncio.create_task(keep_store_out_of_gc(current_version))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
