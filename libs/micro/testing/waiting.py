"""Waiting, bounded, for something that happens asynchronously (a watch event, a reload)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

POLL_S = 0.01


async def eventually(
    check: Callable[[], bool], what: str = "the condition", *, limit_s: float = 10.0
) -> None:
    """Return once check() holds; fail naming `what` after `limit_s` (a bound on the
    wait, not a timing assertion)."""
    deadline = time.monotonic() + limit_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL_S)
