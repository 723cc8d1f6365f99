"""The open-loop generator's side of the overload scenario, run in a process of its own
(spawned: this module imports only micro.testing), so its CPU is not the test's."""

from __future__ import annotations

import asyncio

from micro.testing.open_loop import Offered, Request, offer, saturate


def lookup(k: int) -> Request:
    return ("GET", f"/data/device{1 + k % 2}", b"")


def capacity(urls: list[str], seconds: float) -> Offered:
    """Closed loop on 16 connections: what data-srv answers when kept just busy."""
    return asyncio.run(saturate(urls, lookup, seconds=seconds, connections=16))


def flood(urls: list[str], rate: float, seconds: float) -> Offered:
    """`rate` lookups a second, whatever the answers' pace."""
    return asyncio.run(offer(urls, lookup, rate=rate, seconds=seconds, connections=256))


def keep_alive(urls: list[str], seconds: float) -> Offered:
    """Closed loop on 4 kept-alive connections, as `wrk -c 4`: a connection pinned to a
    pod that terminates must be told to move, not closed under a request."""
    return asyncio.run(saturate(urls, lookup, seconds=seconds, connections=4))
