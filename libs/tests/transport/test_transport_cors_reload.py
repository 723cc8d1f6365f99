"""CORS follows server.http.{origins,methods,headers} when its ConfigMap changes, on the
same running HTTP server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

# From conftest.py: an App on a devcluster ConfigMap.
StartConfigMapApp = Callable[..., Awaitable[Any]]

LOCAL = {
    "server": {"http": {"addr": "127.0.0.1:0"}},
    "registry": {"type": "static"},
    "shutdown": {"drain_delay": "0s", "grace_period": "1s"},
}


def cors(*origins: str, methods: tuple[str, ...] = ("GET",), headers: tuple[str, ...] = ()) -> Any:
    http = {"origins": list(origins), "methods": list(methods), "headers": list(headers)}
    return {"server": {"http": http}}


async def preflight(
    http: httpx.AsyncClient, port: int, origin: str, method: str = "GET", headers: str = ""
) -> httpx.Response:
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        request_headers["Access-Control-Request-Headers"] = headers
    return await http.options(f"http://127.0.0.1:{port}/healthz", headers=request_headers)


async def test_an_origin_refused_then_allowed_without_a_restart(
    config_map_app: StartConfigMapApp,
) -> None:
    running = await config_map_app(local=LOCAL, remote=cors("https://a.example"))
    port = running.ctx.http_port
    async with httpx.AsyncClient() as http:
        refused = await preflight(http, port, "https://b.example")
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers

        await running.change(cors("https://a.example", "https://b.example"))
        allowed = await preflight(http, port, "https://b.example")
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://b.example"
        simple = await http.get(
            f"http://127.0.0.1:{port}/healthz", headers={"Origin": "https://b.example"}
        )
        assert simple.headers["access-control-allow-origin"] == "https://b.example"
        assert running.ctx.http_port == port  # the same server throughout


async def test_methods_and_headers_follow_and_cors_can_be_switched_off(
    config_map_app: StartConfigMapApp,
) -> None:
    origin = "https://app.example"
    running = await config_map_app(local=LOCAL, remote=cors(origin))
    port = running.ctx.http_port
    async with httpx.AsyncClient() as http:
        assert (await preflight(http, port, origin, "DELETE")).status_code == 400
        assert (await preflight(http, port, origin, headers="x-request-id")).status_code == 400

        await running.change(cors(origin, methods=("GET", "DELETE"), headers=("X-Request-Id",)))
        assert (await preflight(http, port, origin, "DELETE")).status_code == 200
        assert (await preflight(http, port, origin, headers="x-request-id")).status_code == 200

        await running.change(cors())  # no origins: no CORS handling at all
        gone = await preflight(http, port, origin)
        assert "access-control-allow-origin" not in gone.headers
        assert gone.status_code == 405  # /healthz answers GET only
