"""The admin server over loopback: /metrics, /healthz, the detailed /readyz, its limits
(request head size, read timeout, connections), 404 and 405, HEAD, keep-alive, stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

from micro import metrics
from micro.config.model import AdminServerConfig
from micro.health import Health
from micro.transport.admin import MAX_CONNECTIONS, MAX_HEAD_BYTES, AdminServer

StartAdmin = Callable[..., Awaitable[AdminServer]]


@pytest.fixture
async def start_admin() -> AsyncIterator[StartAdmin]:
    """Start admin servers on 127.0.0.1:0; every one is stopped after the test."""
    started: list[AdminServer] = []

    async def start(health: Health | None = None, read_timeout: str = "5s") -> AdminServer:
        config = AdminServerConfig.model_validate({"addr": "127.0.0.1:0", "timeout": read_timeout})
        server = AdminServer(config, health=health if health is not None else Health())
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop(0)


def url(server: AdminServer, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def exchange(server: AdminServer, raw: bytes) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_probes_follow_the_phase_and_readyz_reports_a_config_error(
    start_admin: StartAdmin,
) -> None:
    health = Health(config_error=lambda: "server.http.timeout: not a duration: 'soon'")
    server = await start_admin(health)
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(url(server, "/healthz"))).json() == {"status": "ok"}
        starting = await client.get(url(server, "/readyz"))
        assert starting.status_code == 503
        assert starting.json()["phase"] == "starting"
        assert "not a duration" in starting.json()["configError"]
        await health.set_serving()
        assert (await client.get(url(server, "/readyz"))).status_code == 200
        await health.set_not_serving()
        stopping = await client.get(url(server, "/readyz"))
        assert stopping.status_code == 503
        assert stopping.json()["phase"] == "shutting down"
        assert (await client.get(url(server, "/healthz"))).status_code == 200


async def test_metrics_are_the_prometheus_exposition(
    start_admin: StartAdmin, start_http: Any
) -> None:
    server = await start_admin()
    public = await start_http()
    async with httpx.AsyncClient(timeout=10) as client:
        await client.get(f"http://127.0.0.1:{public.port}/healthz")
        scrape = await client.get(url(server, "/metrics"))
    assert scrape.status_code == 200
    assert scrape.headers["content-type"] == metrics.render()[1]
    assert 'micro_server_requests_total{code="OK",method="GET /healthz",transport="http"}' in (
        scrape.text
    )
    assert "micro_server_request_duration_seconds_bucket" in scrape.text


class BrokenCollector:
    """A collector whose scrape fails, as a buggy custom metric would."""

    def describe(self) -> list[Metric]:
        return []  # registering must not collect

    def collect(self) -> Iterator[Metric]:
        raise RuntimeError("collector broke")


async def test_a_failing_scrape_is_500_and_the_server_goes_on(start_admin: StartAdmin) -> None:
    server = await start_admin()
    broken = BrokenCollector()
    REGISTRY.register(broken)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            failed = await client.get(url(server, "/metrics"))
            assert (failed.status_code, failed.json()["code"]) == (500, "INTERNAL")
            REGISTRY.unregister(broken)
            assert (await client.get(url(server, "/metrics"))).status_code == 200
    finally:
        with contextlib.suppress(KeyError):
            REGISTRY.unregister(broken)


async def test_unknown_path_is_404_and_other_methods_405(start_admin: StartAdmin) -> None:
    server = await start_admin()
    async with httpx.AsyncClient(timeout=10) as client:
        unknown = await client.get(url(server, "/docs"))
        assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND")
        posted = await client.post(url(server, "/metrics"), content=b"x")
        assert posted.status_code == 405
        assert posted.headers["allow"] == "GET, HEAD"
        head = await client.head(url(server, "/readyz?verbose=1"))
    assert head.status_code == 503
    assert head.content == b""
    assert int(head.headers["content-length"]) > 0


async def test_keep_alive_answers_requests_in_turn_on_one_connection(
    start_admin: StartAdmin,
) -> None:
    server = await start_admin()
    answer = await exchange(
        server,
        b"GET /healthz HTTP/1.1\r\nhost: a\r\n\r\n"
        b"GET /readyz HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    )
    assert answer.count(b"HTTP/1.1 ") == 2
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"HTTP/1.1 503 Service Unavailable\r\n" in answer


async def test_a_request_head_beyond_the_limit_is_431(start_admin: StartAdmin) -> None:
    server = await start_admin()
    filler = b"x-filler: " + b"a" * MAX_HEAD_BYTES + b"\r\n"
    answer = await exchange(server, b"GET /healthz HTTP/1.1\r\nhost: a\r\n" + filler + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")
    long_line = await exchange(server, b"GET /" + b"a" * MAX_HEAD_BYTES + b" HTTP/1.1\r\n\r\n")
    assert long_line.startswith(b"HTTP/1.1 431 ")


async def test_a_malformed_request_is_400(start_admin: StartAdmin) -> None:
    server = await start_admin()
    answer = await exchange(server, b"not http at all\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in answer.lower()


async def test_a_silent_client_is_closed_after_the_read_timeout(
    start_admin: StartAdmin,
) -> None:
    server = await start_admin(read_timeout="200ms")
    # Half a request head, then nothing: the server closes without an answer.
    assert await exchange(server, b"GET /healthz HTTP/1.1\r\n") == b""


async def test_connections_beyond_the_limit_are_refused_with_503(
    start_admin: StartAdmin,
) -> None:
    server = await start_admin()
    idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(MAX_CONNECTIONS)]
    try:
        # The server has taken them all once one request on the last of them is answered.
        _, last = idle[-1]
        last.write(b"GET /healthz HTTP/1.1\r\nhost: a\r\n\r\n")
        reader, _ = idle[-1]
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)).startswith(b"HTTP/1.1 200")
        refused = await exchange(server, b"GET /healthz HTTP/1.1\r\nhost: a\r\n\r\n")
        assert refused.startswith(b"HTTP/1.1 503 ")
    finally:
        for _, writer in idle:
            writer.close()


async def test_stop_closes_idle_connections_at_once_and_the_port(
    start_admin: StartAdmin,
) -> None:
    server = await start_admin()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nhost: a\r\n\r\n")
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)).startswith(b"HTTP/1.1 200")
    port = server.port
    # A grace period far beyond the test's timeout: an idle connection must not wait it out.
    await asyncio.wait_for(server.stop(600), 10)
    rest = await asyncio.wait_for(reader.read(), 10)  # the answer's end, then EOF
    assert rest.endswith(b'{"status": "ok"}')
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


def test_the_admin_server_is_never_advertised() -> None:
    server = AdminServer(AdminServerConfig(addr="127.0.0.1:0"), health=Health())
    assert server.endpoint is None
