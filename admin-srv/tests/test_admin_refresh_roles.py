"""Roles are re-read at refresh: a session whose account changed role ends, over HTTP and
gRPC; an unchanged one refreshes."""

from __future__ import annotations

import pathlib

import grpc
import pytest
from sqlalchemy import text

from api.admin_srv.v1 import admin_pb2
from micro.db import create_engine

from .conftest import Admin, login


async def demote(tmp_path: pathlib.Path, user_name: str) -> None:
    """What an administrator's change of role does to user-srv's database."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/users.db")
    try:
        async with engine.begin() as conn:
            changed = await conn.execute(
                text("UPDATE users SET role = 'user' WHERE user_name = :name"), {"name": user_name}
            )
        assert changed.rowcount == 1
    finally:
        await engine.dispose()


async def test_a_changed_role_ends_the_session_at_refresh(
    admin: Admin, tmp_path: pathlib.Path
) -> None:
    over_http = await login(admin.http, "root", "rootpass")
    over_grpc = await admin.auth.Login(
        admin_pb2.LoginRequest(user_name="root", password="rootpass")
    )
    unchanged = await login(admin.http, "thangn", "123456")

    await demote(tmp_path, "root")
    refused = await admin.http.post(
        "/admin/v1/refresh", json={"refreshToken": over_http["refreshToken"]}
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused_grpc:
        await admin.auth.RefreshToken(
            admin_pb2.RefreshTokenRequest(refresh_token=over_grpc.refresh_token)
        )
    kept = await admin.http.post(
        "/admin/v1/refresh", json={"refreshToken": unchanged["refreshToken"]}
    )
    again = await login(admin.http, "root", "rootpass")
    me = await admin.http.get(
        "/admin/v1/users", headers={"Authorization": f"Bearer {again['token']}"}
    )

    assert refused.status_code == 401, refused.text
    assert "log in again" in refused.json()["message"]
    assert refused_grpc.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert kept.status_code == 200, kept.text
    # The next login carries the current role: no longer an admin.
    assert me.status_code == 403
