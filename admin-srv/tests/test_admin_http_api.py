"""admin-srv's HTTP API through its real server, with real backends behind it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from micro.config.model import HttpServerConfig
from micro.testing.tokens import access_claims

from .conftest import Admin, Backends, login


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_login_answers_the_original_shape(admin: Admin) -> None:
    body = await login(admin.http, "thangn", "123456")

    assert body["id"] == "1"
    assert body["userName"] == "thangn"
    assert body["token"].count(".") == 2
    assert body["tokenType"] == "Bearer"
    assert body["expiresIn"] == "900"  # int64 in the protobuf JSON mapping is a string
    assert set(body) == {"id", "userName", "token", "refreshToken", "tokenType", "expiresIn"}
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["platform"] == "TOKEN_PLATFORM_WEB"
    assert (claims["sub"], claims["uid"]) == ("thangn", "1")


async def test_wrong_password_and_unknown_user_are_the_same_401(admin: Admin) -> None:
    wrong = await admin.http.post(
        "/admin/v1/login", json={"userName": "thangn", "password": "nope-nope"}
    )
    unknown = await admin.http.post(
        "/admin/v1/login", json={"userName": "ghost", "password": "nope-nope"}
    )

    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        (b"", None, "must be a JSON object"),
        (b"not json", None, "not valid JSON"),
        (b"[1, 2]", None, "must be a JSON object, got list"),
        (b'{"userName": 5, "password": "123456"}', "userName", "userName:"),
        (b'{"userName": "thangn", "password": "123456", "admin": true}', "admin", "unknown"),
        (b'{"userName": "thangn", "password": "123456", "platform": "TV"}', "platform", "enum"),
        (b'{"userName": "", "password": "123456"}', "userName", "must not be empty"),
        ('{"userName": "thắng", "password": "123456"}'.encode(), "userName", "letters"),
    ],
)
async def test_bad_login_bodies_are_400_naming_the_field(
    admin: Admin, body: bytes, field: str | None, fragment: str
) -> None:
    response = await admin.http.post(
        "/admin/v1/login", content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == "INVALID_ARGUMENT"
    assert error.get("field") == field
    assert fragment in error["message"]


async def test_a_body_over_admin_srvs_limit_is_413_before_it_is_read(
    admin: Admin, http_config: HttpServerConfig
) -> None:
    assert http_config.max_body_bytes == 16384  # admin-srv's configs, not the framework's 1 MiB
    body = b'{"userName": "' + b"a" * 20_000 + b'", "password": "123456"}'

    response = await admin.http.post(
        "/admin/v1/login", content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413, response.text
    assert response.json()["code"] == "RESOURCE_EXHAUSTED"
    assert "larger than 16384 bytes" in response.json()["message"]


async def test_failed_logins_are_rate_limited_with_retry_after(admin: Admin) -> None:
    for _ in range(3):
        response = await admin.http.post(
            "/admin/v1/login", json={"userName": "thangn", "password": "wrong-one"}
        )
        assert response.status_code == 401

    throttled = await admin.http.post(
        "/admin/v1/login", json={"userName": "thangn", "password": "123456"}
    )

    assert throttled.status_code == 429
    assert throttled.json()["code"] == "RESOURCE_EXHAUSTED"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 300
    # Another user from the same address is not blocked yet (the address allows 6).
    assert (
        await admin.http.post("/admin/v1/login", json={"userName": "root", "password": "rootpass"})
    ).status_code == 200


async def test_me_needs_a_valid_token(admin: Admin) -> None:
    session = await login(admin.http, "thangn", "123456")

    anonymous = await admin.http.get("/admin/v1/me")
    me = await admin.http.get("/admin/v1/me", headers=bearer(session["token"]))

    assert anonymous.status_code == 401
    assert me.status_code == 200
    assert me.json()["id"] == "1"
    assert me.json()["userName"] == "thangn"
    assert me.json()["role"] == "user"
    assert me.json()["createTime"].endswith("Z")


async def test_device_lookup_through_device_srv(admin: Admin) -> None:
    token = (await login(admin.http, "thangn", "123456"))["token"]

    found = await admin.http.get("/admin/v1/devices/device1", headers=bearer(token))
    inactive = await admin.http.get("/admin/v1/devices/device3", headers=bearer(token))
    missing = await admin.http.get("/admin/v1/devices/device9", headers=bearer(token))
    anonymous = await admin.http.get("/admin/v1/devices/device1")

    assert found.json() == {"name": "device1", "active": True}
    assert inactive.json() == {"name": "device3"}  # false is the default, left out
    assert missing.status_code == 404
    assert anonymous.status_code == 401


async def test_users_are_for_admins_only(admin: Admin) -> None:
    user_token = (await login(admin.http, "thangn", "123456"))["token"]
    admin_token = (await login(admin.http, "root", "rootpass"))["token"]
    new_user = {"userName": "carol", "password": "carolpass"}

    refused = await admin.http.post("/admin/v1/users", json=new_user, headers=bearer(user_token))
    created = await admin.http.post("/admin/v1/users", json=new_user, headers=bearer(admin_token))
    duplicate = await admin.http.post("/admin/v1/users", json=new_user, headers=bearer(admin_token))
    bad_role = await admin.http.post(
        "/admin/v1/users",
        json={**new_user, "userName": "dave", "role": "god"},
        headers=bearer(admin_token),
    )
    page = await admin.http.get("/admin/v1/users?pageSize=2", headers=bearer(admin_token))
    rest = await admin.http.get(
        f"/admin/v1/users?pageSize=2&pageToken={page.json()['nextPageToken']}",
        headers=bearer(admin_token),
    )
    bad_size = await admin.http.get("/admin/v1/users?pageSize=x", headers=bearer(admin_token))

    assert refused.status_code == 403
    assert created.status_code == 200
    assert created.json()["userName"] == "carol"
    assert created.json()["role"] == "user"
    assert duplicate.status_code == 409
    assert bad_role.json()["field"] == "role"
    assert [u["userName"] for u in page.json()["users"]] == ["thangn", "root"]
    assert [u["userName"] for u in rest.json()["users"]] == ["carol"]
    assert "nextPageToken" not in rest.json()
    assert (bad_size.status_code, bad_size.json()["field"]) == (400, "pageSize")
    # The refused attempt changed nothing: carol exists once, created by the admin.
    assert (await login(admin.http, "carol", "carolpass"))["userName"] == "carol"


async def test_refresh_rotates_and_logout_ends_the_session(admin: Admin) -> None:
    session = await login(admin.http, "thangn", "123456")

    refreshed = await admin.http.post(
        "/admin/v1/refresh", json={"refreshToken": session["refreshToken"]}
    )
    new = refreshed.json()
    logout = await admin.http.post(
        "/admin/v1/logout", json={"refreshToken": new["refreshToken"]}, headers=bearer(new["token"])
    )
    after = await admin.http.post("/admin/v1/refresh", json={"refreshToken": new["refreshToken"]})

    assert refreshed.status_code == 200
    assert (new["id"], new["userName"]) == ("1", "thangn")
    assert new["refreshToken"] != session["refreshToken"]
    assert logout.status_code == 200
    assert logout.json() == {}
    assert after.status_code == 401
    assert after.json()["field"] == "refreshToken"


def _sign(
    backends: Backends,
    claims: dict[str, Any],
    key: Ed25519PrivateKey | None = None,
    kid: str = "k1",
) -> str:
    return jwt.encode(claims, key or backends.signing_key, algorithm="EdDSA", headers={"kid": kid})


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _forged(backends: Backends, case: str) -> str:
    now = int(time.time())
    if case == "alg none":
        return jwt.encode(access_claims(), "", algorithm="none", headers={"kid": "k1"})
    if case == "HS256 with the public key":
        public = backends.signing_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        head = _b64(b'{"alg":"HS256","kid":"k1","typ":"JWT"}')
        body = _b64(json.dumps(access_claims()).encode())
        mac = hmac.new(_b64(public).encode(), f"{head}.{body}".encode(), hashlib.sha256)
        return f"{head}.{body}.{_b64(mac.digest())}"
    if case == "expired":
        return _sign(backends, access_claims(iat=now - 7200, nbf=now - 7200, exp=now - 3600))
    if case == "not yet valid":
        return _sign(backends, access_claims(iat=now + 3600, nbf=now + 3600, exp=now + 7200))
    if case == "wrong iss":
        return _sign(backends, access_claims(iss="evil"))
    if case == "wrong aud":
        return _sign(backends, access_claims(aud=["elsewhere"]))
    if case == "tampered":
        head, body, signature = _sign(backends, access_claims(role="user")).split(".")
        return f"{head}.{_b64(json.dumps(access_claims(role='admin')).encode())}.{signature}"
    if case == "unknown kid":
        return _sign(backends, access_claims(), key=Ed25519PrivateKey.generate(), kid="k9")
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "alg none",
        "HS256 with the public key",
        "expired",
        "not yet valid",
        "wrong iss",
        "wrong aud",
        "tampered",
        "unknown kid",
    ],
)
async def test_forged_tokens_are_refused(admin: Admin, backends: Backends, case: str) -> None:
    good = _sign(backends, access_claims())
    assert (await admin.http.get("/admin/v1/me", headers=bearer(good))).status_code == 200

    response = await admin.http.get("/admin/v1/me", headers=bearer(_forged(backends, case)))

    assert response.status_code == 401, response.text
    assert response.json()["code"] == "UNAUTHENTICATED"
