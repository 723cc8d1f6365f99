"""micro.transport.server: the gRPC and HTTP servers answer the endpoint the app
registers, and the admin server (probes and /metrics) answers none."""

from __future__ import annotations

from typing import Any

from micro.config.model import AdminServerConfig, HttpServerConfig
from micro.health import Health
from micro.transport.admin import AdminServer
from micro.transport.grpc import GrpcServer
from micro.transport.http import HttpServer
from micro.transport.server import Endpoint, Server


async def test_a_listening_server_answers_its_scheme_host_and_port(
    start_grpc: Any, start_http: Any
) -> None:
    grpc_server: Server = await start_grpc()
    http_server: Server = await start_http()

    assert isinstance(grpc_server, GrpcServer)
    assert isinstance(http_server, HttpServer)
    assert grpc_server.endpoint == Endpoint("grpc", "127.0.0.1", grpc_server.port)
    assert http_server.endpoint == Endpoint("http", "127.0.0.1", http_server.port)


async def test_a_server_answers_no_endpoint_before_it_listens_nor_the_admin_server() -> None:
    assert HttpServer(HttpServerConfig(addr="127.0.0.1:0"), health=Health()).endpoint is None
    admin: Server = AdminServer(AdminServerConfig(addr="127.0.0.1:0"), health=Health())

    port = await admin.start()
    try:
        assert port > 0
        assert admin.endpoint is None
    finally:
        await admin.stop(0)
