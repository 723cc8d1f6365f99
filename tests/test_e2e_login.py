"""The login flow end to end: user-srv, token-srv, device-srv and admin-srv each as its
own process, admin-srv finding the others through a static registry. Every process
started here is stopped here."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import jwt
import pytest

from api.admin_srv.v1 import admin_pb2, admin_pb2_grpc

from .login_system import LoginSystem

pytestmark = pytest.mark.e2e

USERS = [
    {"user_name": "thangn", "password": "123456", "role": "user"},
    {"user_name": "root", "password": "rootpass", "role": "admin"},
]


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoginSystem]:
    workdir: pathlib.Path = tmp_path_factory.mktemp("login-flow")
    with LoginSystem(workdir, bootstrap_users=USERS) as system:
        yield system


@pytest.fixture(scope="module")
def http(system: LoginSystem) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.http_url, timeout=20.0) as client:
        yield client


@pytest.fixture(scope="module")
def channel(system: LoginSystem) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(system.grpc_target) as channel:
        yield channel


def login(http: httpx.Client, user_name: str, password: str) -> Any:
    response = http.post("/admin/v1/login", json={"userName": user_name, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def test_login_over_http_answers_as_the_original(http: httpx.Client) -> None:
    body = login(http, "thangn", "123456")

    assert (body["id"], body["userName"]) == ("1", "thangn")
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert (claims["sub"], claims["uid"], claims["platform"]) == (
        "thangn",
        "1",
        "TOKEN_PLATFORM_WEB",
    )
    assert jwt.get_unverified_header(body["token"])["alg"] == "EdDSA"


def test_login_over_grpc_and_me_with_the_token(channel: grpc.Channel) -> None:
    auth = admin_pb2_grpc.AuthenticationServiceStub(channel)

    reply = auth.Login(admin_pb2.LoginRequest(user_name="thangn", password="123456"), timeout=20)
    me = auth.GetMe(
        admin_pb2.GetMeRequest(),
        metadata=(("authorization", f"Bearer {reply.token}"),),
        timeout=20,
    )

    assert (reply.id, reply.user_name) == ("1", "thangn")
    assert (me.id, me.user_name, me.role) == ("1", "thangn", "user")


def test_me_over_http_with_and_without_the_token(http: httpx.Client) -> None:
    token = login(http, "thangn", "123456")["token"]

    me = http.get("/admin/v1/me", headers={"Authorization": f"Bearer {token}"})
    anonymous = http.get("/admin/v1/me")

    assert me.status_code == 200
    assert (me.json()["id"], me.json()["userName"]) == ("1", "thangn")
    assert anonymous.status_code == 401


def test_device_lookup_through_admin_srv(http: httpx.Client) -> None:
    auth = {"Authorization": f"Bearer {login(http, 'thangn', '123456')['token']}"}

    found = http.get("/admin/v1/devices/device1", headers=auth)
    missing = http.get("/admin/v1/devices/device9", headers=auth)

    assert found.status_code == 200
    assert found.json() == {"name": "device1", "active": True}
    assert missing.status_code == 404


def test_admin_creates_a_user_who_can_log_in(http: httpx.Client) -> None:
    auth = {"Authorization": f"Bearer {login(http, 'root', 'rootpass')['token']}"}

    created = http.post(
        "/admin/v1/users", json={"userName": "e2e-user", "password": "e2e-pass"}, headers=auth
    )

    assert created.status_code == 200, created.text
    assert login(http, "e2e-user", "e2e-pass")["userName"] == "e2e-user"


def test_logout_then_refresh_is_refused(http: httpx.Client) -> None:
    session = login(http, "thangn", "123456")
    auth = {"Authorization": f"Bearer {session['token']}"}

    logout = http.post(
        "/admin/v1/logout", json={"refreshToken": session["refreshToken"]}, headers=auth
    )
    refresh = http.post("/admin/v1/refresh", json={"refreshToken": session["refreshToken"]})

    assert logout.status_code == 200
    assert refresh.status_code == 401
    assert refresh.json()["code"] == "UNAUTHENTICATED"


def test_every_process_stops_gracefully(system: LoginSystem) -> None:
    codes = system.stop()

    assert set(codes) >= {"admin_srv", "user_srv", "token_srv"}
    assert all(code == 0 for code in codes.values()), codes
