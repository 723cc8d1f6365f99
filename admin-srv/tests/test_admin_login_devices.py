"""Logins under attack, over HTTP and gRPC against admin-srv and the real user-srv: the
budget is user-srv's (the same with two admin-srv replicas), and a device that logged in
before keeps logging in while unknown clients are locked out (OWASP device cookies)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import grpc
import httpx
from pydantic import SecretStr

from admin_srv.config import AdminAuthConfig, DeviceTokenConfig
from admin_srv.device_tokens import COOKIE_NAME, METADATA_KEY, DeviceTokenSigner
from api.admin_srv.v1 import admin_pb2

from .conftest import Admin, Backends, serve_admin

LOGIN = "/admin/v1/login"
OWNER = {"userName": "thangn", "password": "123456"}
GUESS = {"userName": "thangn", "password": "wrong-guess"}


async def _post(admin: Admin, body: dict[str, str], device_token: str = "") -> httpx.Response:
    """A login from a client with no cookie jar: the device token only when given."""
    headers = {"Cookie": f"{COOKIE_NAME}={device_token}"} if device_token else {}
    admin.http.cookies.clear()
    return await admin.http.post(LOGIN, json=body, headers=headers)


async def _lock_out_unknown_clients(admin: Admin, user_name: str = "thangn") -> None:
    """The attacker's guesses for user_name until unknown clients get 429."""
    guess = {"userName": user_name, "password": "wrong-guess"}
    statuses = [(await _post(admin, guess)).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


def _device_cookie(response: httpx.Response) -> str:
    header = response.headers["set-cookie"]
    assert header.startswith(f"{COOKIE_NAME}="), header
    return header.split(";", 1)[0].split("=", 1)[1]


async def test_login_sets_a_strict_http_only_device_cookie(admin: Admin) -> None:
    response = await _post(admin, OWNER)

    attributes = [a.strip().lower() for a in response.headers["set-cookie"].split(";")]
    assert response.status_code == 200
    assert _device_cookie(response)
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert f"path={LOGIN}" in attributes
    assert "secure" not in attributes  # plain http here; https requests get Secure
    assert any(a.startswith("max-age=") and int(a[8:]) > 0 for a in attributes)


async def test_a_known_device_logs_in_while_unknown_clients_are_refused(admin: Admin) -> None:
    device = _device_cookie(await _post(admin, OWNER))

    await _lock_out_unknown_clients(admin)
    refused = await _post(admin, OWNER)
    owner = await _post(admin, OWNER, device)

    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert owner.status_code == 200, owner.text
    # The same device keeps its id: the renewed token is for the same device.
    assert _device_cookie(owner).split(".")[0] == device.split(".")[0]


async def test_admins_are_locked_out_alike_and_their_devices_still_log_in(admin: Admin) -> None:
    root = {"userName": "root", "password": "rootpass"}
    device = _device_cookie(await _post(admin, root))

    await _lock_out_unknown_clients(admin, "root")
    refused = await _post(admin, root)
    known = await _post(admin, root, device)

    assert refused.status_code == 429
    assert known.status_code == 200


async def test_a_device_token_is_useless_for_another_account(admin: Admin) -> None:
    thangn_device = _device_cookie(await _post(admin, OWNER))
    await _lock_out_unknown_clients(admin, "root")

    moved = await _post(admin, {"userName": "root", "password": "rootpass"}, thangn_device)

    assert moved.status_code == 429


async def test_a_forged_device_token_counts_as_unknown(admin: Admin) -> None:
    device = _device_cookie(await _post(admin, OWNER))
    await _lock_out_unknown_clients(admin)
    device_id, expires, mac = device.split(".")
    forged = [
        f"{device_id}.{int(expires) + 1}.{mac}",  # a later expiry
        f"{'A' * 22}.{expires}.{mac}",  # another device id
        f"{device_id}.{expires}.{'A' * 43}",  # a made-up signature
        "x" * 5000,
    ]

    statuses = [(await _post(admin, OWNER, token)).status_code for token in forged]

    assert statuses == [429] * len(forged)


async def test_a_known_device_has_its_own_small_budget(admin: Admin) -> None:
    device = _device_cookie(await _post(admin, OWNER))

    statuses = [(await _post(admin, GUESS, device)).status_code for _ in range(4)]
    device_after = await _post(admin, OWNER, device)
    unknown_client = await _post(admin, OWNER)

    assert statuses == [401, 401, 401, 429]
    assert device_after.status_code == 429  # that device waits out its lockout
    assert unknown_client.status_code == 200  # the guesses cost no one else


async def test_two_admin_srv_replicas_share_one_budget(
    admin: Admin, backends: Backends, auth_config: AdminAuthConfig
) -> None:
    async with serve_admin(backends, auth_config) as other:
        replicas = [admin, other]
        burst = await asyncio.gather(
            *(_post_concurrently(replicas[i % 2], GUESS) for i in range(8))
        )
        after = [(await _post(replicas[i % 2], GUESS)).status_code for i in range(6)]

    statuses = [*burst, *after]
    # unknown_max_failures in these tests: 3 checked guesses in all, not 3 per replica.
    assert statuses.count(401) == 3
    assert after[-2:] == [429, 429]


async def _post_concurrently(admin: Admin, body: dict[str, str]) -> int:
    # A client of its own: concurrent requests must not share (and clear) one cookie jar.
    async with httpx.AsyncClient(base_url=str(admin.http.base_url)) as client:
        return (await client.post(LOGIN, json=body)).status_code


async def _grpc_login(
    admin: Admin, user_name: str, password: str, device_token: str = ""
) -> tuple[grpc.StatusCode, str]:
    """The call's code and the x-device-token it answered ("" when none)."""
    metadata = ((METADATA_KEY, device_token),) if device_token else ()
    call = admin.auth.Login(
        admin_pb2.LoginRequest(user_name=user_name, password=password), metadata=metadata
    )
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code(), ""
    initial: Any = await call.initial_metadata()
    return grpc.StatusCode.OK, dict(initial).get(METADATA_KEY, "")


async def test_known_device_over_grpc_metadata(admin: Admin) -> None:
    code, device = await _grpc_login(admin, "thangn", "123456")
    assert (code, bool(device)) == (grpc.StatusCode.OK, True)
    guesses = [(await _grpc_login(admin, "thangn", "wrong-guess"))[0] for _ in range(4)]

    unknown, _ = await _grpc_login(admin, "thangn", "123456")
    known, renewed = await _grpc_login(admin, "thangn", "123456", device)
    for_root, _ = await _grpc_login(admin, "root", "wrong-guess", device)

    assert guesses[-1] is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert unknown is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert known is grpc.StatusCode.OK
    assert renewed.split(".")[0] == device.split(".")[0]
    assert for_root is grpc.StatusCode.UNAUTHENTICATED  # root's unknown budget, not locked


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_an_expired_or_rekeyed_token_names_no_device() -> None:
    clock = Clock()
    cfg = DeviceTokenConfig(key=SecretStr("k" * 32), lifetime=timedelta(days=1))
    signer = DeviceTokenSigner(lambda: cfg, clock)
    token = signer.issue("alice")
    device_id = signer.device_id(token, "alice")

    other_key = DeviceTokenSigner(
        lambda: DeviceTokenConfig(key=SecretStr("o" * 32)), clock
    ).device_id(token, "alice")
    clock.now += timedelta(days=1).total_seconds()
    expired = signer.device_id(token, "alice")

    assert len(device_id) == 22
    assert other_key == ""
    assert signer.device_id(token, "bob") == ""
    assert expired == ""
