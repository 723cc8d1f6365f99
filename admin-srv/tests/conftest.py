"""admin-srv's tests run against the real backends: user-srv, token-srv and device-srv on
the framework's gRPC server with SQLite files, and admin-srv as its own App, with its
config file, finding them through a static registry."""

from __future__ import annotations

import contextlib
import json
import pathlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from admin_srv.config import AdminAuthConfig, AdminSrvConfig
from admin_srv.service import NAME as ADMIN_SRV
from admin_srv.service import compose as compose_admin_srv
from api.admin_srv.v1 import admin_pb2_grpc
from api.device_srv.v1 import device_pb2_grpc
from api.token_srv.v1 import token_pb2_grpc
from api.user_srv.v1 import user_pb2_grpc
from device_srv.domain import Device
from device_srv.grpc_api import DevSvcServicer
from device_srv.migrations import MIGRATIONS as DEVICE_MIGRATIONS
from device_srv.repository import SqlDeviceRepository
from device_srv.usecases import DeviceUseCases
from micro.auth import TokenVerifier
from micro.config import load_config
from micro.config.model import GrpcServerConfig, HttpServerConfig
from micro.db import open_database
from micro.idempotency import IdempotencyConfig, OutcomeStore
from micro.registry.endpoints import grpc_target
from micro.testing.apps import running_app
from micro.testing.fixtures import FAST_ARGON2
from micro.testing.grpc_loopback import loopback_grpc_endpoint
from token_srv.config import JwtConfig, JwtKeyConfig
from token_srv.grpc_api import TokenServicer
from token_srv.migrations import MIGRATIONS as TOKEN_MIGRATIONS
from token_srv.repository import SqlTokenRepository
from token_srv.usecases import JwtSettings, TokenUseCases
from user_srv.attempts import LoginBudgets
from user_srv.config import Argon2Config, BootstrapUser, LoginLimitsConfig
from user_srv.grpc_api import UserServicer
from user_srv.migrations import MIGRATIONS as USER_MIGRATIONS
from user_srv.passwords import Argon2PasswordHasher
from user_srv.repository import SqlUserRepository
from user_srv.usecases import UserUseCases

if TYPE_CHECKING:
    from api.admin_srv.v1.admin_pb2_grpc import (
        AuthenticationServiceAsyncStub,
        DeviceServiceAsyncStub,
        UserServiceAsyncStub,
    )
    from api.device_srv.v1.device_pb2_grpc import DevSvcAsyncStub
    from api.token_srv.v1.token_pb2_grpc import TokenServiceAsyncStub
    from api.user_srv.v1.user_pb2_grpc import UserServiceAsyncStub as BackendUserStub

# The HMAC key of device tokens (a Secret in a cluster); test-only.
DEVICE_TOKEN_KEY = "test-device-token-key-" + "k" * 16
USERS = (
    BootstrapUser(user_name="thangn", password=SecretStr("123456")),
    BootstrapUser(user_name="root", password=SecretStr("rootpass"), role="admin"),
)
DEVICES = (Device("device1", True), Device("device2", True), Device("device3", False))


class CountingUserServicer(UserServicer):
    """user-srv's servicer, counting the VerifyPassword calls that reach it."""

    verify_calls = 0

    async def VerifyPassword(self, request: Any, context: Any) -> Any:
        self.verify_calls += 1
        return await super().VerifyPassword(request, context)


@dataclass
class Backends:
    users: BackendUserStub
    tokens: TokenServiceAsyncStub
    devices: DevSvcAsyncStub
    signing_key: Ed25519PrivateKey
    jwt: JwtConfig
    # Where admin-srv finds each backend: its service name -> "grpc://127.0.0.1:<port>".
    endpoints: dict[str, str]
    user_servicer: CountingUserServicer


@dataclass
class Admin:
    http: httpx.AsyncClient
    auth: AuthenticationServiceAsyncStub
    device: DeviceServiceAsyncStub
    user: UserServiceAsyncStub
    verifier: TokenVerifier


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def jwt_cfg(signing_key: Ed25519PrivateKey) -> JwtConfig:
    """token-srv's keys; a test module overrides this fixture to try HS256."""
    pem = signing_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return JwtConfig(keys=(JwtKeyConfig(kid="k1", private_key_pem=SecretStr(pem)),))


@pytest.fixture
async def backends(
    tmp_path: pathlib.Path,
    signing_key: Ed25519PrivateKey,
    jwt_cfg: JwtConfig,
    login_limits: LoginLimitsConfig,
    user_hasher: Argon2PasswordHasher,
) -> AsyncIterator[Backends]:
    settings = JwtSettings.load(jwt_cfg, str(tmp_path))
    user_engine = await open_database(
        f"sqlite+aiosqlite:///{tmp_path}/users.db", USER_MIGRATIONS, "user-srv"
    )
    token_engine = await open_database(
        f"sqlite+aiosqlite:///{tmp_path}/tokens.db", TOKEN_MIGRATIONS, "token-srv"
    )
    device_engine = await open_database(
        f"sqlite+aiosqlite:///{tmp_path}/devices.db", DEVICE_MIGRATIONS, "device-srv"
    )
    budgets = LoginBudgets(user_engine, lambda: login_limits, time.time)
    users = UserUseCases(SqlUserRepository(user_engine), user_hasher, budgets)
    await users.bootstrap(USERS)
    devices = DeviceUseCases(SqlDeviceRepository(device_engine))
    await devices.seed(DEVICES)
    tokens = TokenUseCases(SqlTokenRepository(token_engine), lambda: settings)
    token_outcomes = OutcomeStore(token_engine, IdempotencyConfig)
    user_servicer = CountingUserServicer(users, OutcomeStore(user_engine, IdempotencyConfig))
    services = (
        (user_pb2_grpc.add_UserServiceServicer_to_server, user_servicer),
        (token_pb2_grpc.add_TokenServiceServicer_to_server, TokenServicer(tokens, token_outcomes)),
        (device_pb2_grpc.add_DevSvcServicer_to_server, DevSvcServicer(devices)),
    )
    upstreams = AdminSrvConfig().upstreams
    try:
        async with (
            loopback_grpc_endpoint(*services) as endpoint,
            grpc.aio.insecure_channel(grpc_target(endpoint)) as channel,
        ):
            yield Backends(
                users=user_pb2_grpc.UserServiceStub(channel),
                tokens=token_pb2_grpc.TokenServiceStub(channel),
                devices=device_pb2_grpc.DevSvcStub(channel),
                signing_key=signing_key,
                jwt=jwt_cfg,
                endpoints={
                    upstreams.user_service: endpoint,
                    upstreams.token_service: endpoint,
                    upstreams.device_service: endpoint,
                },
                user_servicer=user_servicer,
            )
    finally:
        for engine in (user_engine, token_engine, device_engine):
            await engine.dispose()


@pytest.fixture
def user_hasher() -> Iterator[Argon2PasswordHasher]:
    """user-srv's hasher behind admin-srv: cheap parameters; a test module may hold it."""
    hasher = Argon2PasswordHasher(Argon2Config(**FAST_ARGON2))
    yield hasher
    hasher.close()


@pytest.fixture
def auth_config() -> AdminAuthConfig:
    return AdminAuthConfig(audience=("go-micro",))


@pytest.fixture
def login_limits() -> LoginLimitsConfig:
    """user-srv's login budgets behind admin-srv in these tests."""
    return LoginLimitsConfig(unknown_max_failures=3, device_max_failures=3, address_max_failures=6)


CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="session")
def file_config() -> AdminSrvConfig:
    """admin-srv's own config file, as the service loads it."""
    return load_config(AdminSrvConfig, service="admin-srv", config_dir=CONFIG_DIR, env={}).current


@pytest.fixture(scope="session")
def http_config(file_config: AdminSrvConfig) -> HttpServerConfig:
    """server.http as admin-srv's own config file sets it (timeouts, body limit, CORS)."""
    http = file_config.server.http
    assert http is not None, f"{CONFIG_DIR}/config.yaml has no server.http"
    return http


@pytest.fixture(scope="session")
def grpc_config(file_config: AdminSrvConfig) -> GrpcServerConfig:
    """server.grpc as admin-srv's own config file sets it (timeout, message limit)."""
    grpc_server = file_config.server.grpc
    assert grpc_server is not None, f"{CONFIG_DIR}/config.yaml has no server.grpc"
    return grpc_server


def _admin_env(backends: Backends, auth_config: AdminAuthConfig) -> dict[str, str]:
    """Overrides of admin-srv's config file: free loopback ports, the backends in a static
    registry, the test's auth section, a device token key, and no drain on shutdown."""
    services = [{"name": name, "endpoints": [e]} for name, e in backends.endpoints.items()]
    return {
        "MICRO__SERVER__HTTP__ADDR": "127.0.0.1:0",
        "MICRO__SERVER__GRPC__ADDR": "127.0.0.1:0",
        "MICRO__REGISTRY__TYPE": "static",
        "MICRO__REGISTRY__SERVICES": json.dumps(services),
        "MICRO__AUTH": auth_config.model_dump_json(exclude_unset=True),
        # One key for every admin-srv a test runs, as replicas share the Secret.
        "MICRO__DEVICE_TOKENS__KEY": DEVICE_TOKEN_KEY,
        "MICRO__SHUTDOWN__DRAIN_DELAY": "0s",
        "MICRO__SHUTDOWN__GRACE_PERIOD": "0s",
    }


@contextlib.asynccontextmanager
async def serve_admin(
    backends: Backends, auth_config: AdminAuthConfig, **overrides: str
) -> AsyncIterator[Admin]:
    """admin-srv as its process runs it (its compose, config file and servers), in this
    process; several at once are replicas sharing the backends. `overrides` are more
    MICRO__* environment overrides."""
    env = _admin_env(backends, auth_config) | overrides
    async with running_app(
        ADMIN_SRV, AdminSrvConfig, compose_admin_srv, config_dir=CONFIG_DIR, env=env
    ) as app:
        assert app.ctx is not None
        assert app.ctx.policy.verifier is not None
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.ctx.http_port}") as client,
            grpc.aio.insecure_channel(f"127.0.0.1:{app.ctx.grpc_port}") as channel,
        ):
            yield Admin(
                http=client,
                auth=admin_pb2_grpc.AuthenticationServiceStub(channel),
                device=admin_pb2_grpc.DeviceServiceStub(channel),
                user=admin_pb2_grpc.UserServiceStub(channel),
                verifier=app.ctx.policy.verifier,
            )


@pytest.fixture
async def admin(backends: Backends, auth_config: AdminAuthConfig) -> AsyncIterator[Admin]:
    async with serve_admin(backends, auth_config) as admin:
        yield admin


async def login(client: httpx.AsyncClient, user_name: str, password: str) -> dict[str, Any]:
    response = await client.post(
        "/admin/v1/login", json={"userName": user_name, "password": password}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
