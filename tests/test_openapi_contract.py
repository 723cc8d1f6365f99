"""admin-srv's and data-srv's OpenAPI documents, as their HTTP servers build them: each
route declares the statuses it answers in the framework's error body, and the rules the
documents restate (admin-srv and data-srv do not import the services they call) are the
ones user-srv and device-srv enforce. No process is started."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import grpc
import jsonschema_rs
import pytest

from admin_srv import http_schemas
from admin_srv.config import AdminSrvConfig
from admin_srv.service import NAME as ADMIN_SRV
from admin_srv.service import compose
from data_srv.http_api import DEVICE_NAME as DATA_DEVICE_NAME
from data_srv.http_api import build_router as data_router
from device_srv.domain import NAME_MAX_LENGTH, name_problem
from micro.app import ServiceContext
from micro.config import load_config
from micro.config.model import HttpServerConfig
from micro.errors import ServiceError
from micro.health import Health
from micro.registry.static import StaticDiscovery
from micro.transport.http import HttpServer
from user_srv import usecases as user_usecases
from user_srv.domain import (
    PASSWORD_MAX,
    PASSWORD_MIN,
    check_new_password,
    check_offered_password,
    check_user_name,
)

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
FRAMEWORK = {"413", "500", "503", "504"}
SIGNED_IN = {"401", "503"}
# Every route and what it answers besides 200 (the framework's answers included).
ADMIN_STATUSES = {
    ("post", "/admin/v1/login"): {"400", "401", "429", "503"} | FRAMEWORK,
    ("post", "/admin/v1/logout"): {"400", "401", "503"} | FRAMEWORK,
    ("post", "/admin/v1/refresh"): {"400", "401", "503"} | FRAMEWORK,
    ("get", "/admin/v1/me"): {"404"} | SIGNED_IN | FRAMEWORK,
    ("get", "/admin/v1/devices/{name}"): {"400", "404"} | SIGNED_IN | FRAMEWORK,
    ("post", "/admin/v1/users"): {"400", "403", "409"} | SIGNED_IN | FRAMEWORK,
    ("get", "/admin/v1/users"): {"400", "403"} | SIGNED_IN | FRAMEWORK,
}
DATA_STATUSES = {("get", "/data/{device}"): {"400", "404", "503"} | FRAMEWORK}
PROBES = {("get", "/healthz"): {"413", "500"}, ("get", "/readyz"): {"413", "500", "503"}}


def admin_document() -> dict[str, Any]:
    # admin-srv's own compose on a context of its own; the stubs are never called: only
    # the routes and the access policy are read.
    async def composed() -> ServiceContext[AdminSrvConfig]:
        ctx = ServiceContext(
            name=ADMIN_SRV,
            version="test",
            instance_id="test",
            config=load_config(AdminSrvConfig, service="admin-srv", env={}),
            discovery=StaticDiscovery([]),
            health=Health(),
            logger=logging.getLogger(ADMIN_SRV),
        )
        await compose(ctx)
        await ctx.close_clients()
        return ctx

    ctx = asyncio.run(composed())
    server = HttpServer(HttpServerConfig(), health=Health(), policy=ctx.policy)
    for router in ctx.routers:
        server.include_router(router)
    return server.app.openapi()


def data_document() -> dict[str, Any]:
    server = HttpServer(HttpServerConfig(), health=Health())
    server.include_router(data_router(cast("Any", None)))
    return server.app.openapi()


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return {"admin-srv": admin_document(), "data-srv": data_document()}


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }


@pytest.mark.parametrize(
    ("service", "expected"),
    [("admin-srv", ADMIN_STATUSES | PROBES), ("data-srv", DATA_STATUSES | PROBES)],
)
def test_each_route_declares_what_it_answers(
    documents: dict[str, dict[str, Any]],
    service: str,
    expected: dict[tuple[str, str], set[str]],
) -> None:
    declared = {
        key: set(operation["responses"]) - {"200"}
        for key, operation in operations(documents[service]).items()
    }

    assert declared == expected


@pytest.mark.parametrize("service", ["admin-srv", "data-srv"])
def test_replies_have_schemas_and_errors_the_error_body(
    documents: dict[str, dict[str, Any]], service: str
) -> None:
    for (_, path), operation in operations(documents[service]).items():
        for status, response in operation["responses"].items():
            content = response["content"]
            if status == "200" or path == "/readyz":
                assert all(media["schema"] for media in content.values()), (path, status)
                continue
            assert content == {"application/json": {"schema": ERROR_REF}}, (path, status)
            assert ("Retry-After" in response.get("headers", {})) is (status in ("429", "503"))


def test_admin_requests_declare_their_bodies_and_the_protected_routes_the_bearer(
    documents: dict[str, dict[str, Any]],
) -> None:
    admin = operations(documents["admin-srv"])
    for key in (
        ("post", "/admin/v1/login"),
        ("post", "/admin/v1/logout"),
        ("post", "/admin/v1/refresh"),
        ("post", "/admin/v1/users"),
    ):
        body = admin[key]["requestBody"]
        assert body["required"] is True
        assert body["content"]["application/json"]["schema"]["additionalProperties"] is False
    security = {key: operation.get("security") for key, operation in admin.items()}
    bearer: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    assert security == {
        ("get", "/healthz"): None,
        ("get", "/readyz"): None,
        ("post", "/admin/v1/login"): None,
        ("post", "/admin/v1/refresh"): None,
        ("post", "/admin/v1/logout"): [{}, *bearer],  # the access token is revoked when sent
        ("get", "/admin/v1/me"): bearer,
        ("get", "/admin/v1/devices/{name}"): bearer,
        ("post", "/admin/v1/users"): bearer,
        ("get", "/admin/v1/users"): bearer,
    }


def body_schema(documents: dict[str, dict[str, Any]], path: str, field: str) -> dict[str, Any]:
    operation = documents["admin-srv"]["paths"][path]["post"]
    schema: dict[str, Any] = operation["requestBody"]["content"]["application/json"]["schema"]
    return cast("dict[str, Any]", schema["properties"][field])


def refused(check: Any, value: str) -> bool:
    """Whether user-srv's check refuses value with INVALID_ARGUMENT."""
    try:
        check(value)
    except ServiceError as error:
        return error.code is grpc.StatusCode.INVALID_ARGUMENT
    return False


USER_NAMES = ["", "a", "thangn", "a.b_c-d", "x" * 64, "x" * 65, "a b", "thắng", "a\n", "a/b"]
DEVICE_NAMES = ["a", "device1", "d.e_v-1", "x" * NAME_MAX_LENGTH, "x" * 64, "a b", "é", "a\n"]


@pytest.mark.parametrize("path", ["/admin/v1/login", "/admin/v1/users"])
@pytest.mark.parametrize("name", USER_NAMES)
def test_the_declared_user_name_rule_is_user_srvs(
    documents: dict[str, dict[str, Any]], path: str, name: str
) -> None:
    schema = body_schema(documents, path, "userName")

    assert jsonschema_rs.is_valid(schema, name) is not refused(check_user_name, name)


@pytest.mark.parametrize(
    ("path", "check"),
    [("/admin/v1/login", check_offered_password), ("/admin/v1/users", check_new_password)],
)
def test_the_declared_password_lengths_are_user_srvs(
    documents: dict[str, dict[str, Any]], path: str, check: Any
) -> None:
    schema = body_schema(documents, path, "password")
    lengths = {0, 1, PASSWORD_MIN - 1, PASSWORD_MIN, PASSWORD_MAX, PASSWORD_MAX + 1}

    for length in lengths:
        password = "p" * length
        assert jsonschema_rs.is_valid(schema, password) is not refused(check, password), length


@pytest.mark.parametrize("name", DEVICE_NAMES)
def test_the_declared_device_name_rules_are_device_srvs(
    documents: dict[str, dict[str, Any]], name: str
) -> None:
    admin = documents["admin-srv"]["paths"]["/admin/v1/devices/{name}"]["get"]
    admin_schema = admin["parameters"][0]["schema"]

    valid = name_problem(name) is None
    assert jsonschema_rs.is_valid(admin_schema, name) is valid
    assert jsonschema_rs.is_valid(DATA_DEVICE_NAME, name) is valid


def test_the_documented_page_sizes_are_user_srvs() -> None:
    assert http_schemas.USERS_DEFAULT_PAGE_SIZE == user_usecases.DEFAULT_PAGE_SIZE
    assert http_schemas.USERS_MAX_PAGE_SIZE == user_usecases.MAX_PAGE_SIZE
