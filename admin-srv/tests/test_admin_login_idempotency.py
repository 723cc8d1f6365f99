"""A login with an idempotency key, over HTTP and gRPC against the real user-srv and
token-srv: a retry with the same key gets the session of the first attempt, never a
second one; a malformed key is refused naming where it came from."""

from __future__ import annotations

import grpc
import pytest

from api.admin_srv.v1 import admin_pb2

from .conftest import Admin

LOGIN = "/admin/v1/login"
OWNER = {"userName": "thangn", "password": "123456"}
ROOT = {"userName": "root", "password": "rootpass"}


async def test_a_retried_http_login_gets_the_same_session(admin: Admin) -> None:
    headers = {"Idempotency-Key": "login-1"}
    first = await admin.http.post(LOGIN, json=OWNER, headers=headers)
    retried = await admin.http.post(LOGIN, json=OWNER, headers=headers)
    unkeyed = await admin.http.post(LOGIN, json=OWNER)
    assert [r.status_code for r in (first, retried, unkeyed)] == [200, 200, 200]
    assert retried.json()["refreshToken"] == first.json()["refreshToken"]
    assert retried.json()["token"] == first.json()["token"]
    assert unkeyed.json()["refreshToken"] != first.json()["refreshToken"]


async def test_a_retried_grpc_login_gets_the_same_session(admin: Admin) -> None:
    request = admin_pb2.LoginRequest(user_name="thangn", password="123456")
    metadata = (("idempotency-key", "login-2"),)
    first = await admin.auth.Login(request, metadata=metadata)
    retried = await admin.auth.Login(request, metadata=metadata)
    assert retried.refresh_token == first.refresh_token
    assert retried.token == first.token


async def test_two_users_with_one_key_get_their_own_sessions(admin: Admin) -> None:
    headers = {"Idempotency-Key": "shared-key"}
    owner = await admin.http.post(LOGIN, json=OWNER, headers=headers)
    root = await admin.http.post(LOGIN, json=ROOT, headers=headers)
    assert [owner.status_code, root.status_code] == [200, 200]
    assert owner.json()["userName"] == "thangn"
    assert root.json()["userName"] == "root"


@pytest.mark.parametrize("key", ["", "k" * 65, "no spaces"])
async def test_a_malformed_key_is_refused_naming_it(admin: Admin, key: str) -> None:
    response = await admin.http.post(LOGIN, json=OWNER, headers={"Idempotency-Key": key})
    assert response.status_code == 400
    assert response.json()["field"] == "Idempotency-Key"
    request = admin_pb2.LoginRequest(user_name="thangn", password="123456")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await admin.auth.Login(request, metadata=(("idempotency-key", key),))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "idempotency-key" in (raised.value.details() or "")


async def test_a_retried_wrong_login_counts_once_against_the_limit(admin: Admin) -> None:
    guess = {"userName": "thangn", "password": "wrong-guess"}
    retried = [
        (await admin.http.post(LOGIN, json=guess, headers={"Idempotency-Key": "g-1"}))
        for _ in range(4)
    ]
    assert [r.status_code for r in retried] == [401] * 4  # one attempt, counted once
    # Unknown clients have three failures (the test limits): two more attempts, then locked.
    others = [
        (await admin.http.post(LOGIN, json=guess, headers={"Idempotency-Key": f"g-{n}"}))
        for n in (2, 3, 4)
    ]
    assert [r.status_code for r in others] == [401, 401, 429]
