"""What the HTTP server's /openapi.json declares on its own (micro.transport.openapi and
micro.transport.proto_schema), read from a real server over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Query

from api.echo.v1 import echo_pb2
from micro.auth import AccessPolicy
from micro.transport.openapi import error_responses
from micro.transport.proto_schema import json_reply, json_request_body, message_schema

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def routes() -> APIRouter:
    router = APIRouter()

    @router.get("/public")
    async def public() -> dict[str, str]:
        return {}

    @router.get("/items/{name}", responses=error_responses(404))
    async def item(name: str) -> dict[str, str]:
        return {"name": name}

    @router.get("/admin/things")
    async def things(size: Annotated[int, Query(ge=0, le=10)] = 0) -> dict[str, int]:
        return {"size": size}

    @router.post("/admin/things", responses=error_responses(409))
    async def add_thing() -> dict[str, str]:
        return {}

    return router


@pytest.fixture
async def document(start_http: Any) -> AsyncIterator[dict[str, Any]]:
    policy = AccessPolicy()
    policy.protect("/items")
    policy.protect("/admin", roles=("admin",))
    server = await start_http(routes(), policy=policy)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        yield (await client.get("/openapi.json")).json()


def statuses(document: dict[str, Any], method: str, path: str) -> set[str]:
    return set(document["paths"][path][method]["responses"])


def test_every_route_declares_the_framework_answers(document: dict[str, Any]) -> None:
    assert statuses(document, "get", "/public") == {"200", "413", "500", "503", "504"}
    # The probes are never cut by the timeout, nor shed.
    assert statuses(document, "get", "/healthz") == {"200", "413", "500"}
    assert statuses(document, "get", "/readyz") == {"200", "413", "500", "503"}


def test_validated_routes_declare_400_and_no_422(document: dict[str, Any]) -> None:
    for path, method in (("/items/{name}", "get"), ("/admin/things", "get")):
        assert "400" in statuses(document, method, path)
    for operations in document["paths"].values():
        for operation in operations.values():
            assert "422" not in operation["responses"]
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_protected_routes_declare_the_bearer_scheme_401_403_and_503(
    document: dict[str, Any],
) -> None:
    signed_in = document["paths"]["/items/{name}"]["get"]
    admin_only = document["paths"]["/admin/things"]["post"]

    assert signed_in["security"] == admin_only["security"] == [{"bearerAuth": []}]
    assert {"401", "404", "503"} <= set(signed_in["responses"])
    assert "403" not in signed_in["responses"]
    assert {"401", "403", "409", "503"} <= set(admin_only["responses"])
    assert "security" not in document["paths"]["/public"]["get"]
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")


def test_every_error_answer_is_the_error_body_with_retry_after_on_429_and_503(
    document: dict[str, Any],
) -> None:
    for path, operations in document["paths"].items():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                if int(status) < 400 or path == "/readyz":
                    continue
                assert response["content"]["application/json"]["schema"] == ERROR_REF
                if status in ("429", "503"):
                    assert "Retry-After" in response["headers"]
    error = document["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["code", "message"]
    assert set(error["properties"]) == {"code", "message", "field"}
    assert error["additionalProperties"] is False


async def test_a_wrong_method_names_every_method_of_the_path(
    start_http: Any,
) -> None:
    # Starlette names only the first route's methods; RFC 9110 wants all of the resource's.
    server = await start_http(routes())
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        response = await client.delete("/admin/things")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.json()["code"] == "UNIMPLEMENTED"


def test_message_schemas_follow_the_protobuf_json_mapping() -> None:
    request = message_schema(
        echo_pb2.EchoRequest.DESCRIPTOR,
        request=True,
        required=["text"],
        constraints={"text": {"maxLength": 64}},
    )
    reply = message_schema(echo_pb2.EchoResponse.DESCRIPTOR, request=False)
    log = message_schema(echo_pb2.AppendResponse.DESCRIPTOR, request=False)

    assert request["additionalProperties"] is False
    assert request["required"] == ["text"]
    assert request["properties"]["text"] == {"type": "string", "maxLength": 64}
    # A field that may be left out may be null (ParseDict reads null as the default).
    assert {"type": "null"} in request["properties"]["note"]["anyOf"]
    tone = request["properties"]["tone"]["anyOf"]
    assert tone[0]["enum"][1] == "TONE_PLAIN"  # by name
    assert tone[1] == {"type": "integer", "enum": [0, 1, 2, 3]}  # or by number
    # int64 is a string in replies.
    assert reply["properties"]["length"] == {"type": "string", "pattern": "^-?[0-9]+$"}
    appended = log["properties"]["entries"]["items"]["properties"]["appendTime"]
    assert appended == {"type": "string", "format": "date-time"}


def test_a_constraint_on_a_field_the_message_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match="txt"):
        message_schema(echo_pb2.EchoRequest.DESCRIPTOR, request=True, required=["txt"])


def test_request_and_reply_declarations() -> None:
    schema = {"type": "object"}

    assert json_request_body(schema) == {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}
    }
    assert json_reply(schema)["content"] == {"application/json": {"schema": schema}}
