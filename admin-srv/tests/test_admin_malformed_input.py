"""Malformed input on both of admin-srv's public ports is a clear 4xx or its gRPC code,
never a 500 or INTERNAL, and is logged at most at WARNING without a traceback."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from admin_srv.config import AdminSrvConfig
from admin_srv.json_body import MAX_DEPTH
from api.admin_srv.v1 import admin_pb2
from micro.config.model import GrpcServerConfig, HttpServerConfig
from micro.testing.waiting import eventually

from .conftest import Admin

USER_SERVICE_PREFIX = "/user_srv.v1.UserService/"


def b64(document: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()


def token_with_header(header: dict[str, Any]) -> str:
    return f"{b64(header)}.{b64({'sub': 'thangn'})}.{b64('signature')}"


@pytest.fixture
def quiet_log(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """After the test: while it ran, nothing was logged above WARNING or with a traceback."""
    caplog.set_level(logging.DEBUG)
    yield
    records = caplog.get_records("call")
    assert records, "the test logged nothing, so there was nothing to check"
    loud = [r for r in records if r.levelno > logging.WARNING or r.exc_info]
    assert not loud, [f"{r.levelname} {r.getMessage()}" for r in loud]


# PyJWT refuses each of these headers with an InvalidTokenError that is not a DecodeError.
BAD_HEADERS = [
    pytest.param({"alg": "EdDSA", "kid": 7}, "Key ID", id="kid-number"),
    pytest.param({"alg": "EdDSA", "kid": None}, "Key ID", id="kid-null"),
    pytest.param({"alg": "EdDSA", "kid": {"k": "k1"}}, "Key ID", id="kid-object"),
    pytest.param({"alg": "EdDSA", "kid": "k1", "crit": ["exp"]}, "crit", id="crit-list"),
    pytest.param({"alg": "EdDSA", "kid": "k1", "crit": "exp"}, "crit", id="crit-string"),
    pytest.param({"alg": "EdDSA", "kid": "k1", "crit": []}, "crit", id="crit-empty"),
    # Echoed in the message: gRPC could not send an unpaired surrogate as UTF-8.
    pytest.param({"alg": "EdDSA", "kid": "k1", "crit": ["\ud800"]}, "crit", id="crit-surrogate"),
]


@pytest.mark.parametrize(("header", "named"), BAD_HEADERS)
@pytest.mark.usefixtures("quiet_log")
async def test_a_bad_token_header_is_401_over_http(
    admin: Admin, header: dict[str, Any], named: str
) -> None:
    response = await admin.http.get(
        "/admin/v1/me", headers={"Authorization": f"Bearer {token_with_header(header)}"}
    )

    assert response.status_code == 401, response.text
    assert response.json()["code"] == "UNAUTHENTICATED"
    assert "access token: malformed header" in response.json()["message"]
    assert named.lower() in response.json()["message"].lower()


@pytest.mark.parametrize(("header", "named"), BAD_HEADERS)
@pytest.mark.usefixtures("quiet_log")
async def test_a_bad_token_header_is_unauthenticated_over_grpc(
    admin: Admin, header: dict[str, Any], named: str, caplog: pytest.LogCaptureFixture
) -> None:
    metadata = (("authorization", f"Bearer {token_with_header(header)}"),)

    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await admin.auth.GetMe(admin_pb2.GetMeRequest(), metadata=metadata)
    # The server logs the call once it has answered: the client may see the answer first.
    await eventually(
        lambda: any(r.name == "micro.grpc" for r in caplog.get_records("call")),
        "the server's log line of the call",
    )

    assert failure.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "access token: malformed header" in str(failure.value.details())
    assert named.lower() in str(failure.value.details()).lower()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 12_000, id="12000-arrays"),
        pytest.param(b'{"userName": ' + b'{"a": ' * 2_000, id="2000-objects"),
        pytest.param(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), id="one-past-the-limit"),
    ],
)
@pytest.mark.usefixtures("quiet_log")
async def test_a_body_nested_too_deep_is_400(admin: Admin, body: bytes) -> None:
    response = await admin.http.post(
        "/admin/v1/login", content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400, response.text
    assert response.json() == {
        "code": "INVALID_ARGUMENT",
        "message": f"request body: nested deeper than {MAX_DEPTH} levels",
    }


@pytest.mark.usefixtures("quiet_log")
async def test_brackets_inside_strings_do_not_count_as_nesting(admin: Admin) -> None:
    password = '"[{\\"' + "[{" * 40  # quotes, escapes and brackets, all inside the string

    response = await admin.http.post(
        "/admin/v1/login", json={"userName": "thangn", "password": password}
    )

    assert response.status_code == 401, response.text  # read and refused as a wrong password


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b'"platform": 1e400', "platform: number out of range", id="overflow"),
        pytest.param(b'"platform": NaN', "platform: number out of range", id="nan"),
        pytest.param(
            b'"platform": "\\ud800"',
            "platform: string holds an unpaired surrogate",
            id="enum-surrogate",
        ),
        pytest.param(
            b'"\\udfff": 1',
            "request body: a field name holds an unpaired surrogate",
            id="name-surrogate",
        ),
    ],
)
@pytest.mark.usefixtures("quiet_log")
async def test_values_protobuf_cannot_hold_are_400(admin: Admin, body: bytes, message: str) -> None:
    # json_format raises OverflowError or SystemError on these, not its ParseError.
    content = b'{"userName": "thangn", "password": "123456", ' + body + b"}"

    response = await admin.http.post(
        "/admin/v1/login", content=content, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400, response.text
    assert response.json()["message"] == message


def user_srv_calls() -> float:
    """The calls user-srv's server has counted so far, whatever their method and code."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "micro_server_requests"
        for sample in metric.samples
        if sample.name.endswith("_total")
        and sample.labels.get("method", "").startswith(USER_SERVICE_PREFIX)
    )


@pytest.mark.usefixtures("quiet_log")
async def test_a_grpc_message_over_the_http_body_limit_is_refused_before_user_srv(
    admin: Admin, grpc_config: GrpcServerConfig, http_config: HttpServerConfig
) -> None:
    assert grpc_config.max_message_bytes == http_config.max_body_bytes == 16384
    before = user_srv_calls()

    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await admin.auth.Login(admin_pb2.LoginRequest(user_name="thangn", password="p" * 20_480))
    small = await admin.auth.Login(admin_pb2.LoginRequest(user_name="thangn", password="123456"))

    assert failure.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in str(failure.value.details())
    assert small.user_name == "thangn"
    assert user_srv_calls() == before + 1  # the small login's VerifyPassword only


def test_the_public_grpc_limit_may_not_exceed_the_http_body_limit(
    file_config: AdminSrvConfig,
) -> None:
    server = file_config.server.model_dump()
    server["grpc"]["max_message_bytes"] = server["http"]["max_body_bytes"] + 1

    with pytest.raises(ValueError, match=r"must not exceed server\.http\.max_body_bytes"):
        AdminSrvConfig.model_validate({"server": server})
    server["grpc"]["max_message_bytes"] = 1024  # lower is allowed
    assert AdminSrvConfig.model_validate({"server": server}).server.grpc is not None


def test_an_unset_public_grpc_limit_is_the_http_body_limit() -> None:
    # The framework's own defaults (HTTP 1 MiB, gRPC 4 MiB) must still make a valid config.
    config = AdminSrvConfig.model_validate({"server": {"http": {}, "grpc": {}}})
    assert config.server.http is not None
    assert config.server.grpc is not None
    assert config.server.grpc.max_message_bytes == config.server.http.max_body_bytes
    custom = AdminSrvConfig.model_validate(
        {"server": {"http": {"max_body_bytes": 2048}, "grpc": {"addr": "127.0.0.1:0"}}}
    )
    assert custom.server.grpc is not None
    assert custom.server.grpc.max_message_bytes == 2048
