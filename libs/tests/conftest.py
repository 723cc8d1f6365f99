"""Shared fixtures for the libs tests."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import grpc
import kubernetes.client
import pytest

from api.device_srv.v1 import device_pb2, device_pb2_grpc
from api.user_srv.v1 import user_pb2, user_pb2_grpc
from devcluster.testing import RunningDevCluster, running_devcluster
from micro.auth import AccessPolicy, current_principal
from micro.config.model import GrpcServerConfig, HttpServerConfig
from micro.errors import ServiceError
from micro.health import Health
from micro.tracing import current_trace_id
from micro.transport.grpc import GrpcServer
from micro.transport.http import HttpServer

DEVICE_SERVICE = "device_srv.v1.DevSvc"


class ScriptedDevices(device_pb2_grpc.DevSvcServicer):
    """DevSvc whose Get does what the device name says: the runtime tests' handler.

    "code:NOT_FOUND" raises ServiceError(NOT_FOUND, field="name"); "boom" raises a plain
    exception; "sleep:0.3" waits, then answers; "whoami" answers the principal's user
    name; "trace" answers the current trace id; anything else answers itself, active.
    """

    async def Get(
        self, request: device_pb2.DeviceName, context: grpc.aio.ServicerContext[Any, Any]
    ) -> device_pb2.Device:
        name = request.name
        if name.startswith("code:"):
            code = grpc.StatusCode[name.removeprefix("code:")]
            raise ServiceError(code, f"name: scripted {code.name}", field="name")
        if name == "boom":
            raise RuntimeError("secret-internal-detail")
        if name.startswith("sleep:"):
            await asyncio.sleep(float(name.removeprefix("sleep:")))
            return device_pb2.Device(name=name, active=True)
        if name == "whoami":
            principal = current_principal()
            return device_pb2.Device(name=principal.user_name if principal else "", active=True)
        if name == "trace":
            return device_pb2.Device(name=current_trace_id(), active=True)
        return device_pb2.Device(name=name, active=True)

    async def List(
        self, request: device_pb2.ListDevicesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> device_pb2.ListDevicesResponse:
        return device_pb2.ListDevicesResponse(devices=[device_pb2.Device(name="d1", active=True)])


StartGrpc = Callable[..., Awaitable[GrpcServer]]
ServerT = TypeVar("ServerT", GrpcServer, HttpServer)
StartHttp = Callable[..., Awaitable[HttpServer]]


class StartedServers:
    """The servers a test started, each stopped after it with its own grace period."""

    def __init__(self) -> None:
        self._stops: list[Callable[[], Awaitable[None]]] = []

    async def start(
        self, server: ServerT, health: Health, *, serving: bool, stop_grace_s: float
    ) -> ServerT:
        await server.start()
        self._stops.append(lambda: server.stop(stop_grace_s))
        if serving:
            await health.set_serving()
        return server

    async def stop_all(self) -> None:
        for stop in self._stops:
            await stop()


@pytest.fixture
async def started_servers() -> AsyncIterator[StartedServers]:
    servers = StartedServers()
    yield servers
    await servers.stop_all()


@pytest.fixture
def start_grpc(started_servers: StartedServers) -> StartGrpc:
    """Start gRPC servers on 127.0.0.1:0; every one is stopped after the test."""

    async def start(
        servicer: Any = None,
        *,
        add: Any = device_pb2_grpc.add_DevSvcServicer_to_server,
        name: str = DEVICE_SERVICE,
        health: Health | None = None,
        policy: AccessPolicy | None = None,
        deadline: timedelta = timedelta(seconds=2),
        max_message_bytes: int = 4 << 20,
        serving: bool = True,
    ) -> GrpcServer:
        health = health if health is not None else Health()
        config = GrpcServerConfig(
            addr="127.0.0.1:0", timeout=deadline, max_message_bytes=max_message_bytes
        )
        server = GrpcServer(config, health=health, policy=policy)
        server.add_service(add, servicer if servicer is not None else ScriptedDevices(), name)
        return await started_servers.start(server, health, serving=serving, stop_grace_s=0)

    return start


@pytest.fixture
def start_http(started_servers: StartedServers) -> StartHttp:
    """Start HTTP servers on 127.0.0.1:0; every one is stopped after the test."""

    async def start(
        *routers: Any,
        health: Health | None = None,
        policy: AccessPolicy | None = None,
        serving: bool = True,
        **config: Any,
    ) -> HttpServer:
        health = health if health is not None else Health()
        server = HttpServer(
            HttpServerConfig(addr="127.0.0.1:0", **config),
            health=health,
            policy=policy,
            title="test",
            version="v0",
        )
        for router in routers:
            server.include_router(router)
        return await started_servers.start(server, health, serving=serving, stop_grace_s=1)

    return start


@pytest.fixture
async def grpc_channel_to() -> AsyncIterator[Callable[[GrpcServer], grpc.aio.Channel]]:
    """Open channels to started servers; all are closed after the test."""
    channels: list[grpc.aio.Channel] = []

    def open_channel(server: GrpcServer) -> grpc.aio.Channel:
        channels.append(grpc.aio.insecure_channel(f"127.0.0.1:{server.port}"))
        return channels[-1]

    yield open_channel
    for channel in channels:
        await channel.close(None)


# Registry, discovery and client tests: one devcluster, pods driven as a kubelet would ---

_namespaces = itertools.count(1)


@pytest.fixture(scope="session")
def registry_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDevCluster]:
    with running_devcluster(tmp_path_factory.mktemp("registry-devcluster")) as running:
        yield running


class PodDriver:
    """Creates pods in its own namespace and sets their status through /status, as the
    scheduler and kubelet would (no process runs: the tests start their own servers)."""

    def __init__(self, cluster: RunningDevCluster) -> None:
        self.cluster = cluster
        self.api = cluster.api_client()
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.namespace = f"registry-{next(_namespaces)}"
        self.core.create_namespace(
            kubernetes.client.V1Namespace(
                metadata=kubernetes.client.V1ObjectMeta(name=self.namespace)
            )
        )

    def reconnect(self) -> None:
        """A new client after the API server restarted."""
        self.api.close()  # type: ignore[no-untyped-call]
        self.api = self.cluster.api_client()
        self.core = kubernetes.client.CoreV1Api(self.api)

    def create(
        self,
        name: str,
        *,
        labels: dict[str, str],
        annotations: dict[str, str] | None = None,
        ports: Sequence[tuple[str, int]] = (),
    ) -> None:
        self.core.create_namespaced_pod(
            self.namespace,
            kubernetes.client.V1Pod(
                metadata=kubernetes.client.V1ObjectMeta(
                    name=name, labels=labels, annotations=annotations or {}
                ),
                spec=kubernetes.client.V1PodSpec(
                    node_name="devcluster",  # scheduled: deletion is graceful
                    containers=[
                        kubernetes.client.V1Container(
                            name="app",
                            image="local/app",
                            ports=[
                                kubernetes.client.V1ContainerPort(name=n, container_port=p)
                                for n, p in ports
                            ],
                        )
                    ],
                ),
            ),
        )

    def run(self, name: str, ip: str, *, ready: bool = True, phase: str = "Running") -> None:
        status = "True" if ready else "False"
        self.core.patch_namespaced_pod_status(
            name,
            self.namespace,
            {
                "status": {
                    "phase": phase,
                    "podIP": ip,
                    "podIPs": [{"ip": ip}],
                    "conditions": [{"type": "Ready", "status": status}],
                }
            },
        )

    def patch(self, name: str, metadata: dict[str, Any]) -> None:
        self.core.patch_namespaced_pod(
            name,
            self.namespace,
            {"metadata": metadata},
            _content_type="application/merge-patch+json",
        )

    def delete(self, name: str, grace_s: int | None = None) -> None:
        """Graceful by default: the pod stays, with a deletionTimestamp."""
        self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=grace_s)

    def read(self, name: str) -> Any:
        return self.core.read_namespaced_pod(name, self.namespace)


@pytest.fixture
def pods(registry_cluster: RunningDevCluster) -> Iterator[PodDriver]:
    driver = PodDriver(registry_cluster)
    yield driver
    driver.api.close()  # type: ignore[no-untyped-call]


async def _eventually(check: Callable[[], bool], limit_s: float = 10.0) -> None:
    for _ in range(int(limit_s / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    assert check(), "the condition did not hold in time"


@pytest.fixture
def eventually() -> Callable[..., Awaitable[None]]:
    """`await eventually(check, limit_s=10)`: wait until check() holds (a bound on the
    wait, not a timing assertion)."""
    return _eventually


class Replica(device_pb2_grpc.DevSvcServicer, user_pb2_grpc.UserServiceServicer):
    """Answers its own host as the device name; can fail every call, or answer slowly."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.calls = 0
        self.called = asyncio.Event()
        self.fail_with: grpc.StatusCode | None = None
        self.delay_s = 0.0

    async def Get(
        self, request: device_pb2.DeviceName, context: grpc.aio.ServicerContext[Any, Any]
    ) -> device_pb2.Device:
        self.calls += 1
        self.called.set()
        if self.fail_with is not None:
            await context.abort(self.fail_with, f"{self.host} fails")
        await asyncio.sleep(self.delay_s)
        return device_pb2.Device(name=self.host, active=True)

    async def CreateUser(
        self, request: user_pb2.CreateUserRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> user_pb2.CreateUserResponse:
        self.calls += 1
        if self.fail_with is not None:
            await context.abort(self.fail_with, f"{self.host} fails")
        return user_pb2.CreateUserResponse()

    async def _not_here(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not used by these tests")

    List = GetUser = ListUsers = VerifyPassword = _not_here


StartReplica = Callable[[str], Awaitable[tuple[Replica, int]]]


@pytest.fixture
async def start_replica() -> AsyncIterator[StartReplica]:
    """Start a DevSvc + UserService server on <host>:0; answers (replica, bound port)."""
    servers: list[grpc.aio.Server] = []

    async def start(host: str) -> tuple[Replica, int]:
        replica = Replica(host)
        server = grpc.aio.server()
        device_pb2_grpc.add_DevSvcServicer_to_server(replica, server)
        user_pb2_grpc.add_UserServiceServicer_to_server(replica, server)
        port = server.add_insecure_port(f"{host}:0")
        await server.start()
        servers.append(server)
        return replica, port

    yield start
    await asyncio.gather(*(server.stop(0) for server in servers))
