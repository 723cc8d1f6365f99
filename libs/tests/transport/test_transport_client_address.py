"""client_address() over real loopback servers: proxy headers count only from trusted
proxies, only their right-most untrusted hop, and only when it is an IP address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from fastapi import APIRouter

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.config.model import GrpcServerConfig, HttpServerConfig
from micro.testing.echo import EchoServicer
from micro.transport.client_address import ProxyRules, client_address


def whoami_router() -> APIRouter:
    router = APIRouter()

    @router.get("/whoami")
    async def whoami() -> dict[str, str]:
        return {"address": client_address()}

    return router


class WhoAmI(EchoServicer):
    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.EchoResponse:
        return echo_pb2.EchoResponse(text=client_address())


@pytest.fixture
async def client_from() -> AsyncIterator[Any]:
    """HTTP clients whose connections come from a chosen loopback address."""
    clients: list[httpx.AsyncClient] = []

    def make(source: str) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(local_address=source)
        clients.append(httpx.AsyncClient(transport=transport, timeout=10))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


async def whoami(client: httpx.AsyncClient, server: Any, **headers: str) -> str:
    reply = await client.get(f"http://127.0.0.1:{server.port}/whoami", headers=headers)
    assert reply.status_code == 200, reply.text
    address = reply.json()["address"]
    assert isinstance(address, str)
    return address


async def test_http_peer_is_the_client_and_proxy_headers_are_ignored_by_default(
    start_http: Any, client_from: Any
) -> None:
    """Without trusted_proxies no header moves the address, not even from 127.0.0.1
    (uvicorn's own default would trust X-Forwarded-For from there)."""
    server = await start_http(whoami_router())
    local = client_from("127.0.0.1")
    spoofs = {
        "X-Forwarded-For": "203.0.113.9",
        "Forwarded": "for=203.0.113.9",
        "X-Real-IP": "203.0.113.9",
    }
    assert await whoami(local, server, **spoofs) == "127.0.0.1"
    assert await whoami(client_from("127.0.0.2"), server, **spoofs) == "127.0.0.2"
    assert await whoami(client_from("127.0.0.3"), server) == "127.0.0.3"


async def test_http_trusted_proxy_gives_the_right_most_untrusted_hop(
    start_http: Any, client_from: Any
) -> None:
    server = await start_http(whoami_router(), trusted_proxies=("127.0.0.1/32", "10.0.0.0/8"))
    proxy, stranger = client_from("127.0.0.1"), client_from("127.0.0.5")
    # The client wrote the left part; the trusted proxies appended the rest.
    chain = "198.51.100.1, 203.0.113.9, 10.1.2.3"
    assert await whoami(proxy, server, **{"X-Forwarded-For": chain}) == "203.0.113.9"
    # The same header from a peer that is no trusted proxy counts for nothing.
    assert await whoami(stranger, server, **{"X-Forwarded-For": chain}) == "127.0.0.5"
    # Another header than the configured one is ignored even from the proxy.
    assert await whoami(proxy, server, **{"X-Real-IP": "203.0.113.9"}) == "127.0.0.1"
    # A hop that is no IP address is never used: the proxy that passed it is.
    garbage = {"X-Forwarded-For": "203.0.113.9, not-an-ip"}
    assert await whoami(proxy, server, **garbage) == "127.0.0.1"
    # A zone is free text: dropped, so the answer stays a short canonical address.
    zoned = {"X-Forwarded-For": "fe80::1%" + "x" * 4000}
    assert await whoami(proxy, server, **zoned) == "fe80::1"
    mapped = {"X-Forwarded-For": "[::ffff:203.0.113.9]:443"}
    assert await whoami(proxy, server, **mapped) == "203.0.113.9"
    # Every hop trusted: the farthest one is the client.
    assert await whoami(proxy, server, **{"X-Forwarded-For": "10.9.9.9"}) == "10.9.9.9"


async def test_http_forwarded_and_x_real_ip_headers(start_http: Any, client_from: Any) -> None:
    forwarded = await start_http(
        whoami_router(), trusted_proxies=("127.0.0.1/32",), proxy_header="forwarded"
    )
    real_ip = await start_http(
        whoami_router(), trusted_proxies=("127.0.0.1/32",), proxy_header="x-real-ip"
    )
    proxy = client_from("127.0.0.1")
    header = {"Forwarded": 'for=198.51.100.1, for="[2001:db8::17]:4711";proto=http'}
    assert await whoami(proxy, forwarded, **header) == "2001:db8::17"
    assert await whoami(proxy, real_ip, **{"X-Real-IP": "203.0.113.9"}) == "203.0.113.9"
    assert await whoami(proxy, real_ip, **{"X-Real-IP": "<script>"}) == "127.0.0.1"


LOCAL = {
    "server": {"http": {"addr": "127.0.0.1:0"}, "grpc": {"addr": "127.0.0.1:0", "public": True}},
    "registry": {"type": "static"},
    "shutdown": {"drain_delay": "0s", "grace_period": "1s"},
}


def trusting(*cidrs: str) -> dict[str, Any]:
    section = {"trusted_proxies": list(cidrs)}
    return {"server": {"http": section, "grpc": section}}


async def test_trusted_proxies_follow_the_config_while_the_servers_run(
    config_map_app: Any, client_from: Any
) -> None:
    """trusted_proxies is live: a ConfigMap change applies to the next request, on the
    same HTTP and gRPC servers."""

    async def compose(ctx: Any) -> None:
        ctx.include_router(whoami_router())
        ctx.add_grpc_service(echo_pb2_grpc.add_EchoServiceServicer_to_server, WhoAmI())

    running = await config_map_app(local=LOCAL, remote=trusting(), compose=compose)
    http_port, grpc_port = running.ctx.http_port, running.ctx.grpc_port
    proxy = client_from("127.0.0.1")
    header = {"X-Forwarded-For": "203.0.113.9"}
    url = f"http://127.0.0.1:{http_port}/whoami"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = echo_pb2_grpc.EchoServiceStub(channel)

        async def over_grpc() -> str:
            metadata = (("x-forwarded-for", "203.0.113.9"),)
            reply = await stub.Echo(echo_pb2.EchoRequest(text=""), metadata=metadata)
            return str(reply.text)

        assert (await proxy.get(url, headers=header)).json()["address"] == "127.0.0.1"
        assert await over_grpc() == "127.0.0.1"
        await running.change(trusting("127.0.0.1/32"))
        assert (await proxy.get(url, headers=header)).json()["address"] == "203.0.113.9"
        assert await over_grpc() == "203.0.113.9"
        await running.change(trusting())
        assert (await proxy.get(url, headers=header)).json()["address"] == "127.0.0.1"
    assert (running.ctx.http_port, running.ctx.grpc_port) == (http_port, grpc_port)


async def test_grpc_metadata_counts_only_from_a_trusted_proxy(
    start_grpc: Any, grpc_channel_to: Any
) -> None:
    server = await start_grpc(WhoAmI())
    stub = echo_pb2_grpc.EchoServiceStub(grpc_channel_to(server))
    spoof = (("x-forwarded-for", "203.0.113.9"),)
    untrusted = await stub.Echo(echo_pb2.EchoRequest(text=""), metadata=spoof)
    assert untrusted.text == "127.0.0.1"
    config = GrpcServerConfig(addr="127.0.0.1:0", trusted_proxies=("127.0.0.1/32",))
    server.proxies.update(ProxyRules.of(config))
    chain = (("x-forwarded-for", "198.51.100.1"), ("x-forwarded-for", "203.0.113.9"))
    trusted = await stub.Echo(echo_pb2.EchoRequest(text=""), metadata=chain)
    assert trusted.text == "203.0.113.9"
    garbage = await stub.Echo(echo_pb2.EchoRequest(text=""), metadata=(("x-forwarded-for", "x"),))
    assert garbage.text == "127.0.0.1"


def test_a_trusted_proxy_that_is_no_network_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="not an IP network: 'localhost'"):
        HttpServerConfig(trusted_proxies=("localhost",))


def test_client_address_outside_a_request_says_so() -> None:
    with pytest.raises(RuntimeError, match="only known inside a request"):
        client_address()
