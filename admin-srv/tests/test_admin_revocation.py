"""Logout ends access at admin-srv: token-srv's revocation feed reaches the local verifier
(no call per request), over HTTP and gRPC, across an admin-srv restart and replicas."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable

import grpc
import pytest

from admin_srv.config import AdminAuthConfig
from api.admin_srv.v1 import admin_pb2
from api.token_srv.v1 import token_pb2

from .conftest import Admin, Backends, login, serve_admin

# A bound on the waits below, not the figure asked of the feed.
LIMIT_S = 10.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refused_within(admin: Admin, token: str) -> float:
    """Seconds until /me refuses `token` as revoked; fails after LIMIT_S."""
    start = time.monotonic()
    while time.monotonic() - start < LIMIT_S:
        me = await admin.http.get("/admin/v1/me", headers=bearer(token))
        if me.status_code == 401:
            assert me.json()["message"] == "access token: revoked"
            return time.monotonic() - start
        assert me.status_code == 200, me.text
        await asyncio.sleep(0.005)
    raise AssertionError(f"the revoked token still worked after {LIMIT_S}s")


async def logout(admin: Admin, session: dict[str, str]) -> None:
    answer = await admin.http.post(
        "/admin/v1/logout",
        json={"refreshToken": session["refreshToken"]},
        headers=bearer(session["token"]),
    )
    assert answer.status_code == 200, answer.text


async def test_a_logged_out_token_is_refused_over_http_and_grpc(
    admin: Admin, record_property: Callable[[str, object], None]
) -> None:
    delays = []
    for _ in range(50):
        session = await login(admin.http, "thangn", "123456")
        assert (await admin.http.get("/admin/v1/me", headers=bearer(session["token"]))).is_success
        await logout(admin, session)
        delays.append(await refused_within(admin, session["token"]))

    with pytest.raises(grpc.aio.AioRpcError) as over_grpc:
        await admin.auth.GetMe(
            admin_pb2.GetMeRequest(), metadata=(("authorization", f"Bearer {session['token']}"),)
        )
    assert over_grpc.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in (over_grpc.value.details() or "")
    # The figures, for the record (junit XML); only the refusal is asserted.
    cuts = statistics.quantiles(delays, n=100)
    record_property("revocation_delay_p50_s", round(cuts[49], 4))
    record_property("revocation_delay_p99_s", round(cuts[98], 4))


async def test_logout_with_a_bad_bearer_still_ends_the_session(admin: Admin) -> None:
    session = await login(admin.http, "thangn", "123456")

    answer = await admin.http.post(
        "/admin/v1/logout", json={"refreshToken": session["refreshToken"]}, headers=bearer("x.y.z")
    )
    refresh = await admin.http.post(
        "/admin/v1/refresh", json={"refreshToken": session["refreshToken"]}
    )

    assert answer.status_code == 200, answer.text
    assert refresh.status_code == 401
    # Not the bearer of that logout: the access token lives on until its expiry.
    assert (await admin.http.get("/admin/v1/me", headers=bearer(session["token"]))).is_success


async def test_a_restarted_admin_srv_knows_earlier_revocations(
    backends: Backends, auth_config: AdminAuthConfig
) -> None:
    async with serve_admin(backends, auth_config) as first:
        before = await login(first.http, "thangn", "123456")
        await logout(first, before)
        await refused_within(first, before["token"])
        while_down = await login(first.http, "thangn", "123456")
    # Revoked while no admin-srv runs: only token-srv's database knows.
    await backends.tokens.RevokeToken(
        token_pb2.RevokeTokenRequest(access_token=while_down["token"])
    )

    async with serve_admin(backends, auth_config) as restarted:
        for session in (before, while_down):
            me = await restarted.http.get("/admin/v1/me", headers=bearer(session["token"]))
            assert me.status_code == 401, me.text
            assert me.json()["message"] == "access token: revoked"


async def test_every_replica_refuses_a_token_logged_out_through_another(
    backends: Backends, auth_config: AdminAuthConfig
) -> None:
    async with (
        serve_admin(backends, auth_config) as a,
        serve_admin(backends, auth_config) as b,
    ):
        session = await login(a.http, "thangn", "123456")
        await logout(b, session)

        # Each replica follows the feed on its own; both refuse (or the wait fails).
        await asyncio.gather(*(refused_within(r, session["token"]) for r in (a, b)))
