"""An open-loop HTTP/1.1 load generator: requests arrive at a fixed rate, whatever pace
the answers come at.

A closed-loop client (wrk, a pool of workers) sends the next request only when an answer
came back, so an overloaded server slows its own load down and is never overloaded; a
flood or a 4x-capacity test needs arrivals that do not wait. Requests are written on
kept-alive connections with a minimum of client work (no HTTP library), so the generator
takes little of the CPU it shares with the server on one machine.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

# What a request is: method, path and JSON body (empty for none).
Request = tuple[str, str, bytes]
# Status counted for a request whose connection failed before an answer.
NO_ANSWER = 0


@dataclass
class Offered:
    """What the generator sent and what came back."""

    statuses: Counter[int] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    """From each arrival's due time to its answer, so a wait for a free connection counts."""
    accepted_latencies_s: list[float] = field(default_factory=list)
    """The same, of the 2xx answers only: an overloaded server's fast refusals left out."""
    late: int = 0
    """Arrivals that found every connection busy and waited for one."""

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())


@dataclass
class _Connection:
    host: str
    port: int
    local_address: str | None
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> int:
        """Write the request, read the answer; the status."""
        if self.writer is None:
            local = None if self.local_address is None else (self.local_address, 0)
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, local_addr=local
            )
        assert self.reader is not None
        self.writer.write(request)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length, closing = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                closing = True
        await self.reader.readexactly(length)
        if closing:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _encode(host: str, request: Request) -> bytes:
    method, path, body = request
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def _send(connection: _Connection, request: Request, offered: Offered, since: float) -> None:
    """Send the request and record its answer in `offered`, its latency from `since`."""
    try:
        status = await connection.exchange(_encode(connection.host, request))
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
        connection.close()
        status = NO_ANSWER
    else:
        offered.latencies_s.append(time.monotonic() - since)
        if 200 <= status < 300:
            offered.accepted_latencies_s.append(offered.latencies_s[-1])
    offered.statuses[status] += 1


async def offer(
    urls: Sequence[str],
    make_request: Callable[[int], Request],
    *,
    rate: float,
    seconds: float,
    connections: int = 64,
    local_addresses: Sequence[str | None] = (None,),
) -> Offered:
    """Send make_request(k) at start + k / rate for `seconds`, over `connections` kept-alive
    connections spread over every url and local (source) address; a request waits for a
    free connection only when all are busy (counted in `late`)."""
    if rate <= 0 or seconds <= 0 or connections < 1:
        raise ValueError("rate, seconds and connections must be positive")
    targets = [urlsplit(url) for url in urls]
    pairs = itertools.cycle(itertools.product(local_addresses, targets))
    idle: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(connections):
        address, target = next(pairs)
        if target.hostname is None or target.port is None:
            raise ValueError(f"{target.geturl()!r} names no host and port")
        idle.put_nowait(_Connection(target.hostname, target.port, address))
    offered = Offered()
    start = time.monotonic()
    total = int(rate * seconds)

    async def one(k: int, due: float) -> None:
        if idle.empty():
            offered.late += 1
        connection = await idle.get()
        try:
            await _send(connection, make_request(k), offered, due)
        finally:
            idle.put_nowait(connection)

    tasks = set()
    try:
        for k in range(total):
            due = start + k / rate
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            task = asyncio.create_task(one(k, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        while not idle.empty():
            idle.get_nowait().close()
    return offered


async def saturate(
    urls: Sequence[str],
    make_request: Callable[[int], Request],
    *,
    seconds: float,
    connections: int = 16,
) -> Offered:
    """Closed loop: each of `connections` kept-alive connections sends its next request as
    soon as the last is answered, for `seconds`; 2xx answers per second is the capacity
    an open-loop test offers a multiple of."""
    if seconds <= 0 or connections < 1:
        raise ValueError("seconds and connections must be positive")
    targets = [urlsplit(url) for url in urls]
    offered = Offered()
    counter = itertools.count()
    end = time.monotonic() + seconds

    async def loop(target: SplitResult) -> None:
        if target.hostname is None or target.port is None:
            raise ValueError(f"{target.geturl()!r} names no host and port")
        connection = _Connection(target.hostname, target.port, None)
        try:
            while (start := time.monotonic()) < end:
                await _send(connection, make_request(next(counter)), offered, start)
        finally:
            connection.close()

    await asyncio.gather(*(loop(targets[n % len(targets)]) for n in range(connections)))
    return offered
