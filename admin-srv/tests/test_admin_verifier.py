"""admin-srv asking token-srv VerifyToken: revocation counts at once, and HS256 (the
original example's algorithm, whose key token-srv never serves) works."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from admin_srv.config import AdminAuthConfig
from token_srv.config import JwtConfig, JwtKeyConfig

from .conftest import Admin, login


@pytest.fixture(params=["EdDSA with remote_verify", "HS256"])
def mode(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def jwt_cfg(mode: str, jwt_cfg: JwtConfig) -> JwtConfig:
    if mode == "HS256":
        secret = SecretStr("an HMAC secret of at least 32 bytes!")
        return JwtConfig(keys=(JwtKeyConfig(kid="hs", alg="HS256", secret=secret),))
    return jwt_cfg


@pytest.fixture
def auth_config(mode: str) -> AdminAuthConfig:
    if mode == "HS256":
        return AdminAuthConfig(audience=("go-micro",), algorithms=("HS256",))
    return AdminAuthConfig(audience=("go-micro",), remote_verify=True)


async def test_revoked_access_token_is_refused_at_once(admin: Admin, mode: str) -> None:
    session = await login(admin.http, "thangn", "123456")
    auth = {"Authorization": f"Bearer {session['token']}"}
    assert (await admin.http.get("/admin/v1/me", headers=auth)).status_code == 200

    logout = await admin.http.post(
        "/admin/v1/logout", json={"refreshToken": session["refreshToken"]}, headers=auth
    )
    after = await admin.http.get("/admin/v1/me", headers=auth)

    assert logout.status_code == 200
    assert after.status_code == 401
    assert "revoked" in after.json()["message"]
