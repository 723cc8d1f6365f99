"""What admin-srv's OpenAPI document promises, held over its real HTTP server: page sizes
in their declared range, logout's required refresh token, the methods of a path."""

from __future__ import annotations

import grpc
import pytest

from api.admin_srv.v1 import admin_pb2
from micro.paging import MAX_REQUESTED_PAGE_SIZE

from .conftest import Admin, login


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("page_size", ["2147483648", "-1", "-2147483649", "99999999999999999999"])
async def test_a_page_size_out_of_range_is_400_naming_it(admin: Admin, page_size: str) -> None:
    root = await login(admin.http, "root", "rootpass")

    response = await admin.http.get(
        "/admin/v1/users", params={"pageSize": page_size}, headers=bearer(root["token"])
    )

    assert response.status_code == 400, response.text
    error = response.json()
    assert (error["code"], error["field"]) == ("INVALID_ARGUMENT", "pageSize")


async def test_the_largest_declared_page_size_is_lowered_not_refused(admin: Admin) -> None:
    root = await login(admin.http, "root", "rootpass")

    response = await admin.http.get(
        "/admin/v1/users",
        params={"pageSize": MAX_REQUESTED_PAGE_SIZE},
        headers=bearer(root["token"]),
    )

    assert response.status_code == 200, response.text
    assert [u["userName"] for u in response.json()["users"]] == ["thangn", "root"]


async def test_the_declared_page_size_range_is_the_one_enforced(admin: Admin) -> None:
    document = (await admin.http.get("/openapi.json")).json()
    parameters = document["paths"]["/admin/v1/users"]["get"]["parameters"]
    page_size = next(p for p in parameters if p["name"] == "pageSize")["schema"]

    assert (page_size["minimum"], page_size["maximum"]) == (0, MAX_REQUESTED_PAGE_SIZE)


async def test_logout_without_the_refresh_token_is_400_over_http_and_grpc(admin: Admin) -> None:
    session = await login(admin.http, "thangn", "123456")

    over_http = await admin.http.post("/admin/v1/logout", json={}, headers=bearer(session["token"]))
    with pytest.raises(grpc.aio.AioRpcError) as over_grpc:
        await admin.auth.Logout(
            admin_pb2.LogoutRequest(), metadata=(("authorization", f"Bearer {session['token']}"),)
        )

    assert over_http.status_code == 400, over_http.text
    assert over_http.json()["field"] == "refreshToken"
    assert over_grpc.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "refreshToken" in str(over_grpc.value.details())
    # The session was left alone: its refresh token still works.
    refreshed = await admin.http.post(
        "/admin/v1/refresh", json={"refreshToken": session["refreshToken"]}
    )
    assert refreshed.status_code == 200, refreshed.text


async def test_a_method_the_path_does_not_take_is_405_naming_those_it_does(admin: Admin) -> None:
    root = await login(admin.http, "root", "rootpass")

    response = await admin.http.delete("/admin/v1/users", headers=bearer(root["token"]))

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
