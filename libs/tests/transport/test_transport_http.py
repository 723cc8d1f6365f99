"""The HTTP server over loopback: probes, the error table as JSON, recovery, CORS,
body limit, timeout, validation errors, OpenAPI and its switch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.errors import HTTP_STATUS_BY_CODE, ServiceError
from micro.health import Health
from micro.testing.echo import act_out


class CreateDevice(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str = Field(min_length=1)
    page_size: int = Field(default=10, ge=1, le=100, alias="pageSize")


def device_router(downstream_port: int | None = None) -> APIRouter:
    router = APIRouter()

    @router.get("/devices/{name}")
    async def get_device(name: str) -> dict[str, Any]:
        await act_out(name, "name")
        return {"name": name, "active": True}

    @router.post("/devices")
    async def create_device(body: CreateDevice) -> dict[str, Any]:
        return {"name": body.name, "pageSize": body.page_size}

    @router.get("/downstream/{name}")
    async def downstream(name: str) -> dict[str, Any]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{downstream_port}") as channel:
            echo = await echo_pb2_grpc.EchoServiceStub(channel).Echo(
                echo_pb2.EchoRequest(text=name)
            )
        return {"name": echo.text}

    return router


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


def url(server: Any, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def test_readyz_follows_the_phase_and_tells_nothing_more(
    start_http: Any, client: httpx.AsyncClient
) -> None:
    """The public /readyz is terse: the phase and a config error are on the admin port."""
    health = Health(config_error=lambda: "server.http.timeout: not a duration: 'soon'")
    server = await start_http(health=health, serving=False)
    assert (await client.get(url(server, "/healthz"))).status_code == 200
    starting = await client.get(url(server, "/readyz"))
    assert (starting.status_code, starting.json()) == (503, {"status": "not ready"})
    await health.set_serving()
    ready = await client.get(url(server, "/readyz"))
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    await health.set_not_serving()
    stopping = await client.get(url(server, "/readyz"))
    assert (stopping.status_code, stopping.json()) == (503, {"status": "not ready"})
    assert (await client.get(url(server, "/healthz"))).status_code == 200


TABLE = sorted(HTTP_STATUS_BY_CODE.items(), key=lambda item: str(item[0].name))


@pytest.mark.parametrize(("code", "status"), TABLE)
async def test_service_error_maps_through_the_table(
    code: grpc.StatusCode, status: int, start_http: Any, client: httpx.AsyncClient
) -> None:
    server = await start_http(device_router())
    response = await client.get(url(server, f"/devices/code:{code.name}"))
    assert response.status_code == status
    assert response.json() == {
        "code": code.name,
        "message": f"name: scripted {code.name}",
        "field": "name",
    }


async def test_the_named_statuses() -> None:
    expected = {"INVALID_ARGUMENT": 400, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
                "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "RESOURCE_EXHAUSTED": 429,
                "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504}  # fmt: skip
    assert {c.name: s for c, s in HTTP_STATUS_BY_CODE.items() if c.name in expected} == expected
    assert ServiceError(grpc.StatusCode.DATA_LOSS, "x").http_status == 500


async def test_downstream_grpc_error_maps_to_http(
    start_http: Any, start_grpc: Any, client: httpx.AsyncClient
) -> None:
    device_srv = await start_grpc()
    server = await start_http(device_router(device_srv.port))
    missing = await client.get(url(server, "/downstream/code:NOT_FOUND"))
    assert missing.status_code == 404
    assert missing.json() == {
        "code": "NOT_FOUND",
        "message": "text: scripted NOT_FOUND",
        "field": "text",
    }
    assert (await client.get(url(server, "/downstream/d1"))).json() == {"name": "d1"}


async def test_unexpected_exception_is_500_without_traceback(
    start_http: Any, client: httpx.AsyncClient
) -> None:
    server = await start_http(device_router())
    response = await client.get(url(server, "/devices/boom"))
    assert response.status_code == 500
    assert response.json() == {"code": "INTERNAL", "message": "internal error"}
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    # the server keeps serving
    assert (await client.get(url(server, "/devices/d1"))).status_code == 200


async def test_validation_error_names_the_field(start_http: Any, client: httpx.AsyncClient) -> None:
    server = await start_http(device_router())
    response = await client.post(url(server, "/devices"), json={"name": "d1", "pageSize": 0})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "INVALID_ARGUMENT"
    assert body["field"] == "pageSize"
    assert body["message"].startswith("pageSize: ")
    missing = await client.post(url(server, "/devices"), json={"pageSize": 5})
    assert (missing.status_code, missing.json()["field"]) == (400, "name")
    ok = await client.post(url(server, "/devices"), json={"name": "d1", "pageSize": 5})
    assert ok.json() == {"name": "d1", "pageSize": 5}


async def test_cors_preflight_and_simple_request(
    start_http: Any, client: httpx.AsyncClient
) -> None:
    server = await start_http(
        device_router(),
        origins=("https://app.example",),
        methods=("GET", "POST"),
        headers=("Content-Type", "Authorization"),
    )
    preflight = await client.options(
        url(server, "/devices"),
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    refused = await client.options(
        url(server, "/devices"),
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 400
    simple = await client.get(url(server, "/devices/d1"), headers={"Origin": "https://app.example"})
    assert simple.headers["access-control-allow-origin"] == "https://app.example"


async def test_body_over_the_limit_is_413(start_http: Any, client: httpx.AsyncClient) -> None:
    server = await start_http(device_router(), max_body_bytes=256)
    big = {"name": "x" * 1000}
    declared = await client.post(url(server, "/devices"), json=big)
    assert declared.status_code == 413
    assert declared.json()["code"] == "RESOURCE_EXHAUSTED"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        yield b'{"name": "'
        for _ in range(10):
            yield b"x" * 100
        yield b'"}'

    streamed = await client.post(
        url(server, "/devices"), content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert (await client.post(url(server, "/devices"), json={"name": "ok"})).status_code == 200


async def test_slow_request_is_504(start_http: Any, client: httpx.AsyncClient) -> None:
    server = await start_http(device_router(), timeout="100ms")
    response = await client.get(url(server, "/devices/sleep:5"))
    assert response.status_code == 504
    assert response.json()["code"] == "DEADLINE_EXCEEDED"


async def test_openapi_docs_and_unknown_route(start_http: Any, client: httpx.AsyncClient) -> None:
    server = await start_http(device_router())
    openapi = (await client.get(url(server, "/openapi.json"))).json()
    assert "/devices/{name}" in openapi["paths"]
    assert "/readyz" in openapi["paths"]
    assert (await client.get(url(server, "/docs"))).status_code == 200
    # /metrics is on the admin port only (micro.transport.admin).
    assert (await client.get(url(server, "/metrics"))).status_code == 404
    unknown = await client.get(url(server, "/nowhere"))
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND")


async def test_docs_false_removes_the_openapi_document_and_docs(
    start_http: Any, client: httpx.AsyncClient
) -> None:
    server = await start_http(device_router(), docs=False)
    assert (await client.get(url(server, "/openapi.json"))).status_code == 404
    assert (await client.get(url(server, "/docs"))).status_code == 404
    assert (await client.get(url(server, "/devices/d1"))).status_code == 200
    assert (await client.get(url(server, "/readyz"))).status_code == 200
