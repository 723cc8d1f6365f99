"""micro.testing.open_loop against a real HTTP/1.1 server on loopback: arrivals do not
wait for answers, each request is counted once, by its answer's status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest

from micro.testing.open_loop import NO_ANSWER, Request, offer, saturate


class SlowServer:
    """Holds every request until `release_after` are in flight at once, then answers each:
    200 with the request's body echoed, or, for path /close, a 503 with Connection: close;
    /drop closes without an answer."""

    def __init__(self) -> None:
        self.release_after = 1
        self.release = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0
        self.bodies: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request_line := await reader.readline():
                length = 0
                while (line := await reader.readline()) != b"\r\n":
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
                if self.in_flight >= self.release_after:
                    self.release.set()
                await self.release.wait()
                self.in_flight -= 1
                self.bodies.append(body)
                path = request_line.split()[1]
                if path == b"/drop":
                    break
                status, extra = (
                    (b"503", b"Connection: close\r\n") if path == b"/close" else (b"200", b"")
                )
                writer.write(
                    b"HTTP/1.1 "
                    + status
                    + b" X\r\n"
                    + extra
                    + b"Content-Length: %d\r\n\r\n" % len(body)
                    + body
                )
                await writer.drain()
                if extra:
                    break
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


@pytest.fixture
async def server() -> AsyncIterator[SlowServer]:
    slow = SlowServer()
    slow.server = await asyncio.start_server(slow.handle, "127.0.0.1", 0)
    async with slow.server:
        yield slow


def post(path: str) -> Callable[[int], Request]:
    return lambda k: ("POST", path, json.dumps({"k": k}).encode())


async def test_arrivals_do_not_wait_for_answers(server: SlowServer) -> None:
    server.release_after = 10
    offered = await offer([server.url], post("/"), rate=100, seconds=0.1, connections=16)
    assert offered.statuses == {200: 10}
    assert server.most_in_flight == 10  # all ten were in flight before any answer
    assert sorted(json.loads(b)["k"] for b in server.bodies) == list(range(10))
    assert offered.late == 0
    assert len(offered.latencies_s) == 10


async def test_closed_and_dropped_connections_are_counted(server: SlowServer) -> None:
    closed = await offer([server.url], post("/close"), rate=100, seconds=0.05, connections=1)
    dropped = await offer([server.url], post("/drop"), rate=100, seconds=0.05, connections=1)
    assert closed.statuses == {503: 5}  # a new connection after each Connection: close
    assert dropped.statuses == {NO_ANSWER: 5}
    assert dropped.latencies_s == []
    assert closed.accepted_latencies_s == []  # a 503 is answered, not accepted


async def test_a_rate_that_sends_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        await offer(["http://127.0.0.1:1"], post("/"), rate=0, seconds=1)


async def test_saturate_keeps_each_connection_busy_until_the_time_is_up(
    server: SlowServer,
) -> None:
    server.release.set()  # answer at once
    offered = await saturate([server.url], post("/"), seconds=0.2, connections=2)
    assert offered.statuses[200] == offered.sent > 2
    assert len(offered.accepted_latencies_s) == offered.sent
    assert server.most_in_flight <= 2  # closed loop: never more than one per connection
