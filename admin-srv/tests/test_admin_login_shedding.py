"""A login burst while user-srv's only argon2 slot is busy: shed at once through admin-srv
(HTTP 503, gRPC RESOURCE_EXHAUSTED overloaded), and other users log in once it frees."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import httpx
import pytest

from admin_srv.config import AdminAuthConfig
from api.admin_srv.v1 import admin_pb2
from micro.errors import ServiceError
from user_srv.config import Argon2Config
from user_srv.passwords import Argon2PasswordHasher

from .conftest import Admin, Backends, serve_admin


class HeldHasher(Argon2PasswordHasher):
    """One slot, no queue; each verification waits in its worker until `gate` opens."""

    def __init__(self) -> None:
        super().__init__(
            Argon2Config(time_cost=1, memory_kib=1024, max_concurrency=1, max_waiting=0)
        )
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)

    def _check(self, password_hash: str, password: str) -> bool:
        self.started.release()
        self.gate.wait(timeout=10)
        return super()._check(password_hash, password)


@pytest.fixture
def user_hasher() -> Iterator[Argon2PasswordHasher]:
    hasher = HeldHasher()
    yield hasher
    hasher.gate.set()
    hasher.close()


@pytest.fixture
async def admin(backends: Backends, auth_config: AdminAuthConfig) -> AsyncIterator[Admin]:
    """admin-srv calling once per login: the burst's answers are user-srv's first ones,
    while the held login still has its slot (the client's retry after a shedding
    server's pushback is libs/tests/client/test_client_retry_budget.py's business)."""
    async with serve_admin(backends, auth_config, MICRO__CLIENT__GRPC__MAX_ATTEMPTS="1") as admin:
        yield admin


async def test_a_burst_is_shed_at_once_over_http_and_grpc(
    admin: Admin, user_hasher: HeldHasher
) -> None:
    base = str(admin.http.base_url)
    holder = asyncio.create_task(
        admin.http.post("/admin/v1/login", json={"userName": "thangn", "password": "wrong"})
    )
    assert await asyncio.to_thread(user_hasher.started.acquire, True, 10)

    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base) as client:
        *http_burst, grpc_shed = await asyncio.gather(
            *(
                client.post("/admin/v1/login", json={"userName": f"ghost-{i}", "password": "x1"})
                for i in range(4)
            ),
            admin.auth.Login(admin_pb2.LoginRequest(user_name="ghost-9", password="x1")),
            return_exceptions=True,
        )
    shed_in = time.monotonic() - started
    user_hasher.gate.set()
    held = await holder
    after = await admin.http.post(
        "/admin/v1/login", json={"userName": "root", "password": "rootpass"}
    )

    assert all(isinstance(r, httpx.Response) for r in http_burst)
    assert [r.status_code for r in http_burst if isinstance(r, httpx.Response)] == [503] * 4
    assert all(
        r.json()["code"] == "RESOURCE_EXHAUSTED"
        for r in http_burst
        if isinstance(r, httpx.Response)
    )
    assert isinstance(grpc_shed, grpc.aio.AioRpcError)
    shed = ServiceError.from_rpc_error(grpc_shed)
    assert shed.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert shed.cause is not None
    assert shed.cause.value == "OVERLOADED"
    assert shed_in < 5, "the burst waited for the busy slot instead of being shed"
    assert held.status_code == 401
    assert after.status_code == 200
