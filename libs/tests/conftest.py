"""Fixtures that tests in several folders of libs/tests use; a folder's own fixtures are in
its conftest.py."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc
import kubernetes.client
import pytest
import yaml

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from devcluster.testing import RunningDevCluster, running_devcluster
from micro.app import App, ServiceContext
from micro.auth import AccessPolicy, current_principal
from micro.config.model import GrpcServerConfig, HttpServerConfig, ServiceConfig
from micro.health import Health
from micro.log import trace_ids
from micro.registry.names import short_name
from micro.testing import waiting
from micro.testing.echo import EchoServicer, act_out
from micro.transport.grpc import GrpcServer
from micro.transport.http import HttpServer


class ScriptedEcho(EchoServicer):
    """EchoService whose Echo does what the text says: the runtime tests' handler.

    "whoami" answers the principal's user name; "trace" answers the current trace id;
    otherwise micro.testing.echo.act_out(text, "text") (raise, fail or wait), then the
    text itself.
    """

    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.EchoResponse:
        text = request.text
        if text == "whoami":
            principal = current_principal()
            return echo_pb2.EchoResponse(text=principal.user_name if principal else "")
        if text == "trace":
            return echo_pb2.EchoResponse(text=trace_ids()[0])
        await act_out(text, "text")
        return echo_pb2.EchoResponse(text=text)

    async def Put(
        self, request: echo_pb2.PutRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.PutResponse:
        return echo_pb2.PutResponse()


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
        add: Any = echo_pb2_grpc.add_EchoServiceServicer_to_server,
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
        server.add_service(add, servicer if servicer is not None else ScriptedEcho())
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
        service_account: str | None = None,
    ) -> None:
        """service_account None: the account of the service its labels name, as that
        service's own pods run (discovery routes to no pod under another account)."""
        if service_account is None:
            app = next((v for k, v in labels.items() if k.endswith("-service-app")), "")
            service_account = short_name(app) if app else "default"
        self.core.create_namespaced_pod(
            self.namespace,
            kubernetes.client.V1Pod(
                metadata=kubernetes.client.V1ObjectMeta(
                    name=name, labels=labels, annotations=annotations or {}
                ),
                spec=kubernetes.client.V1PodSpec(
                    service_account_name=service_account,
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


@pytest.fixture
def eventually() -> Callable[..., Awaitable[None]]:
    """`await eventually(check, limit_s=10)`: micro.testing.waiting.eventually."""
    return waiting.eventually


# Apps whose config comes from a ConfigMap in the devcluster --------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """An in-process App configures the root logger; put it back after the test."""
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "micro"]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)


_config_apps = itertools.count(1)
CONFIG_CHANGE_WAIT_S = 20.0


class ConfigMapApp:
    """An in-process App whose config is local files plus the ConfigMap `<short name>`
    (label app=<short name>) in its own namespace, watched as in the cluster."""

    def __init__(self, cluster: RunningDevCluster, config_dir: Path) -> None:
        number = next(_config_apps)
        self.short_name = f"reload-{number}"
        self.service = f"go-micro.{self.short_name}"
        self.namespace = f"config-reload-{number}"
        self.config_dir = config_dir
        self._api = cluster.api_client()
        self._core = kubernetes.client.CoreV1Api(self._api)
        self._core.create_namespace(
            kubernetes.client.V1Namespace(
                metadata=kubernetes.client.V1ObjectMeta(name=self.namespace)
            )
        )
        self._kubeconfig = str(cluster.kubeconfig)
        self.app: App[ServiceConfig] | None = None

    @property
    def ctx(self) -> ServiceContext[ServiceConfig]:
        assert self.app is not None, "start() first"
        assert self.app.ctx is not None
        return self.app.ctx

    def _config_map(self, config: dict[str, Any]) -> kubernetes.client.V1ConfigMap:
        return kubernetes.client.V1ConfigMap(
            metadata=kubernetes.client.V1ObjectMeta(
                name=self.short_name, labels={"app": self.short_name}
            ),
            data={"config.yaml": yaml.safe_dump(config)},
        )

    async def start(
        self,
        *,
        local: dict[str, Any],
        remote: dict[str, Any],
        compose: Callable[[ServiceContext[ServiceConfig]], Awaitable[None]] | None = None,
    ) -> ConfigMapApp:
        """Write the local files, create the ConfigMap from `remote`, start the App."""
        bootstrap = {
            "remote": {
                "type": "k8s",
                "k8s": {"kubeconfig": self._kubeconfig, "namespace": self.namespace},
                "secrets": [],
            }
        }
        (self.config_dir / "remote.yaml").write_text(yaml.safe_dump(bootstrap))
        # The admin port on loopback and a free port, unless the test says otherwise.
        server = {"admin": {"addr": "127.0.0.1:0"}, **local.get("server", {})}
        local = {**local, "server": server}
        (self.config_dir / "config.yaml").write_text(yaml.safe_dump(local))
        self._core.create_namespaced_config_map(self.namespace, self._config_map(remote))

        async def no_handlers(_: ServiceContext[ServiceConfig]) -> None:
            return None

        app = App(
            self.service,
            ServiceConfig,
            compose or no_handlers,
            version="test",
            config_dir=self.config_dir,
            env={},
        )
        await app.start()  # undoes what it started when it fails
        self.app = app
        return self

    async def change(self, remote: dict[str, Any]) -> None:
        """Replace the ConfigMap's config and wait until the App's observers ran (this
        one subscribes after the App's own, so it is called after them)."""
        applied = asyncio.Event()
        unsubscribe = self.ctx.config.subscribe(lambda c: c, lambda _: applied.set())
        try:
            self._core.replace_namespaced_config_map(
                self.short_name, self.namespace, self._config_map(remote)
            )
            await asyncio.wait_for(applied.wait(), CONFIG_CHANGE_WAIT_S)
        finally:
            unsubscribe()

    async def stop(self) -> None:
        if self.app is not None:
            app, self.app = self.app, None
            await app.shutdown()
        self._api.close()  # type: ignore[no-untyped-call]


StartConfigMapApp = Callable[..., Awaitable[ConfigMapApp]]


@pytest.fixture
async def config_map_app(
    registry_cluster: RunningDevCluster, tmp_path: Path, restore_logging: None
) -> AsyncIterator[StartConfigMapApp]:
    """`await config_map_app(local={...}, remote={...}, compose=...)`: an App on the
    devcluster's ConfigMap; `await running.change({...})` replaces that config. Each App
    is shut down after the test."""
    started: list[ConfigMapApp] = []

    async def start(**kwargs: Any) -> ConfigMapApp:
        config_dir = tmp_path / f"configs-{len(started)}"
        config_dir.mkdir()
        running = ConfigMapApp(registry_cluster, config_dir)
        started.append(running)
        return await running.start(**kwargs)

    yield start
    for running in started:
        await running.stop()
