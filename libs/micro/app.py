"""The service lifecycle: load config, compose, start servers, register, serve; on
SIGTERM/SIGINT report not-ready, deregister, drain, stop with a grace period, run the
shutdown hooks, exit 0. A start-up failure is one clear log line and exit code 1.

`run(...)` is what a service's `__main__` calls. `App` is the same lifecycle without
signals or exit, for running a service inside a test: `await app.start()`, read
`app.ctx.ports["grpc"]` / `["http"]` / `["admin"]` (or `app.server("grpc")`), then
`await app.shutdown()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.metadata
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from micro.auth import AccessPolicy, TokenVerifier
from micro.client import ClientFactory
from micro.client.factory import StubClass, service_name_of
from micro.config import ConfigHandle, load_config
from micro.config.model import (
    GrpcClientConfig,
    ServiceConfig,
    ShutdownConfig,
)
from micro.health import Health
from micro.identity.caller import caller_tokens
from micro.identity.factory import identity_guard
from micro.identity.guard import IdentityGuard
from micro.kube import kube_client
from micro.log import configure_logging, follow_config
from micro.registry.base import Discovery, Registrar, ServiceInstance
from micro.registry.endpoints import format_endpoint
from micro.registry.factory import registry_from_config, registry_namespace
from micro.registry.labels import instance_id
from micro.registry.names import short_name
from micro.tracing import flush_tracing, setup_tracing
from micro.transport.admin import AdminServer
from micro.transport.client_address import ProxyRules
from micro.transport.grpc import AddToServer, GrpcServer
from micro.transport.server import Server

if TYPE_CHECKING:  # loaded with the HTTP server only: a gRPC-only service never needs it
    from fastapi import APIRouter

C = TypeVar("C", bound=ServiceConfig)
S = TypeVar("S")

Hook = Callable[[], Awaitable[None]]
Compose = Callable[["ServiceContext[C]"], Awaitable[None]]

_log = logging.getLogger("micro.app")

# The servers an app may run, in start order, and how the log lines name them.
SERVER_KINDS = {"grpc": "gRPC", "http": "HTTP", "admin": "admin"}


class StartupError(RuntimeError):
    """A start-up step that cannot go on; its message is the one line the service logs."""


class ServiceContext(Generic[C]):
    """What `compose` gets: config, registration of handlers, clients, hooks, logger."""

    def __init__(
        self,
        *,
        name: str,
        version: str,
        instance_id: str,
        config: ConfigHandle[C],
        discovery: Discovery,
        health: Health,
        logger: logging.Logger,
    ) -> None:
        self.name = name
        self.version = version
        self.instance_id = instance_id
        self.config = config
        self.discovery = discovery
        self.health = health
        self.logger = logger
        self.policy = AccessPolicy()
        self.grpc_services: list[tuple[AddToServer, Any]] = []
        self.routers: list[APIRouter] = []
        self.startup_hooks: list[Hook] = []
        self.shutdown_hooks: list[Hook] = []
        self.ports: dict[str, int] = {}  # the bound port of each kind, once it listens
        self._clients: ClientFactory | None = None

    @property
    def grpc_port(self) -> int | None:
        return self.ports.get("grpc")

    @property
    def http_port(self) -> int | None:
        return self.ports.get("http")

    @property
    def admin_port(self) -> int | None:
        return self.ports.get("admin")

    def add_grpc_service(self, add_to_server: AddToServer, servicer: Any) -> None:
        """Serve a generated servicer, e.g. (add_UserServiceServicer_to_server, UserServicer());
        its full name comes from the descriptor, and it gets its own grpc.health.v1 status."""
        self.grpc_services.append((add_to_server, servicer))

    def include_router(self, router: APIRouter) -> None:
        self.routers.append(router)

    def protect(self, prefix: str, *, roles: Iterable[str] = ()) -> None:
        """Require a valid access token under a gRPC service/method or HTTP path prefix."""
        self.policy.protect(prefix, roles=roles)

    def set_verifier(self, verifier: TokenVerifier) -> None:
        """The verifier of protected calls, e.g. micro.auth.JwtVerifier.from_config(...)."""
        self.policy.verifier = verifier

    def client(self, stub_class: StubClass[S], name: str | None = None) -> S:
        """`ctx.client(UserServiceStub)` -> a UserServiceAsyncStub balanced over the ready
        instances of `name`, by default the service's registry name from its descriptor."""
        if self._clients is None:
            current = self.config.current
            self._clients = ClientFactory(
                self.discovery, current.client.grpc, tokens=caller_tokens(current.identity)
            )
        if name is None:
            name = service_name_of(stub_class)
        return self._clients.stub(name, stub_class)

    def apply_client_config(self, cfg: GrpcClientConfig) -> None:
        """New client.grpc settings for every stub made here, from their next call on
        (a factory made later starts from the current config anyway)."""
        if self._clients is not None:
            self._clients.update(cfg)

    def on_startup(self, hook: Hook) -> None:
        """Runs after the servers listen, before registration."""
        self.startup_hooks.append(hook)

    def on_shutdown(self, hook: Hook) -> None:
        """Runs after the servers stopped, last registered first."""
        self.shutdown_hooks.append(hook)

    async def close_clients(self) -> None:
        clients, self._clients = self._clients, None
        if clients is not None:
            await clients.close()


def default_version(name: str) -> str:
    """SERVICE_VERSION (set by the image build), else the package's version, else "dev"."""
    if os.environ.get("SERVICE_VERSION"):
        return os.environ["SERVICE_VERSION"]
    try:
        return importlib.metadata.version(short_name(name))
    except importlib.metadata.PackageNotFoundError:
        return "dev"


def default_instance_id() -> str:
    """The pod name (POD_NAME, else HOSTNAME as the kubelet sets it, else the host)."""
    return os.environ.get("POD_NAME") or os.environ.get("HOSTNAME") or socket.gethostname()


def default_config_dir(compose: Callable[..., Any]) -> Path | None:
    """MICRO_CONFIG_DIR, else the configs/ folder beside the service's package."""
    if os.environ.get("MICRO_CONFIG_DIR"):
        return Path(os.environ["MICRO_CONFIG_DIR"])
    module = sys.modules.get(getattr(compose, "__module__", ""), None)
    source = getattr(module, "__file__", None)
    if source is None:
        return None
    folder = Path(source).resolve().parent.parent / "configs"
    return folder if folder.is_dir() else None


def advertised_host(bound_host: str) -> str:
    """The address other pods reach this one at: POD_IP, else the bound host when it is
    a concrete address, else this host's name resolution."""
    if os.environ.get("POD_IP"):
        return os.environ["POD_IP"]
    if bound_host not in ("0.0.0.0", "::", ""):
        return bound_host
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


class App(Generic[C]):
    """One service's lifecycle; `run()` drives it from signals."""

    def __init__(
        self,
        name: str,
        config_model: type[C],
        compose: Compose[C],
        *,
        version: str | None = None,
        config_dir: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.version = version or default_version(name)
        self.instance_id = default_instance_id()
        self._model = config_model
        self._compose = compose
        self._config_dir = config_dir if config_dir is not None else default_config_dir(compose)
        self._env = env
        self.health = Health()
        self.ctx: ServiceContext[C] | None = None
        self._handle: ConfigHandle[C] | None = None
        self._api: Any = None
        self._registrar: Registrar | None = None
        self._discovery: Discovery | None = None
        self._instance: ServiceInstance | None = None
        self._servers: dict[str, Server] = {}  # by kind, in start order
        self._identity: IdentityGuard | None = None
        self._unsubscribe: list[Callable[[], None]] = []  # config observers to drop
        self._shutdown_config: Callable[[], ShutdownConfig] = ShutdownConfig

    async def start(self) -> None:
        """Everything up to serving; raises on any failure after undoing what started."""
        try:
            await self._start()
        except BaseException:
            await self._release(grace=0.0)
            raise

    async def _start(self) -> None:
        configure_logging(
            service_id=self.instance_id, service_name=self.name, service_version=self.version
        )
        handle = load_config(
            self._model, service=self.name, config_dir=self._config_dir, env=self._env
        )
        self._handle = handle
        await handle.start()
        cfg = handle.current
        configure_logging(
            service_id=self.instance_id,
            service_name=self.name,
            service_version=self.version,
            level=cfg.log.level,
            fmt=cfg.log.format,
        )
        self._unsubscribe.append(follow_config(handle))
        self._shutdown_config = handle.view(lambda c: c.shutdown)  # read as shutdown begins
        self.health.report_config_error(lambda: handle.last_error)
        setup_tracing(
            cfg.tracing,
            service_name=self.name,
            service_version=self.version,
            instance_id=self.instance_id,
        )
        self._registrar, self._discovery = self._registry(cfg)
        accounts = handle.subscribe(lambda c: c.registry.accounts, self._discovery.apply_accounts)
        self._unsubscribe.append(accounts)
        ctx = ServiceContext(
            name=self.name,
            version=self.version,
            instance_id=self.instance_id,
            config=handle,
            discovery=self._discovery,
            health=self.health,
            logger=logging.getLogger(self.name),
        )
        self.ctx = ctx
        self._unsubscribe.append(handle.subscribe(lambda c: c.client.grpc, ctx.apply_client_config))
        await self._compose(ctx)
        self._identity = self._identity_guard(cfg, handle)
        if self._identity is not None:
            await self._identity.start()
        self._servers = self._build_servers(cfg, ctx)
        for kind, server in self._servers.items():
            ctx.ports[kind] = await server.start()
        for hook in ctx.startup_hooks:
            await hook()
        self._instance = self._service_instance()
        await self._registrar.register(self._instance)
        await self.health.set_serving()
        _log.info("%s %s started", self.name, self.version)

    def _registry(self, cfg: ServiceConfig) -> tuple[Registrar, Discovery]:
        if cfg.registry.type != "static":
            self._api = kube_client(cfg.registry.k8s)
        return registry_from_config(cfg.registry, self._api)

    def _identity_guard(self, cfg: C, handle: ConfigHandle[C]) -> IdentityGuard | None:
        """The caller-identity check of the gRPC port: with identity.mode kubernetes on
        a port that is not public. It shares the registry's API client (made here when
        the registry is static)."""
        grpc = cfg.server.grpc
        if cfg.identity.mode != "kubernetes" or grpc is None or grpc.public:
            return None
        if self._api is None:
            self._api = kube_client(cfg.registry.k8s)
        return identity_guard(
            cfg.identity,
            api=self._api,
            audience=self.name,
            namespace=registry_namespace(cfg.registry),
            rules=handle.view(lambda c: c.identity.allow),
        )

    def server(self, kind: str) -> Server | None:
        """The running server of this kind ("grpc", "http" or "admin"), if configured."""
        if kind not in SERVER_KINDS:
            raise ValueError(f"no server kind {kind!r}; one of {', '.join(SERVER_KINDS)}")
        return self._servers.get(kind)

    def _build_servers(self, cfg: ServiceConfig, ctx: ServiceContext[C]) -> dict[str, Server]:
        """The servers the config asks for, by kind in start order, each with what compose
        added to it; CORS rules and trusted proxies follow the config from here on."""
        if ctx.grpc_services and cfg.server.grpc is None:
            raise StartupError("gRPC services were added but server.grpc is not configured")
        if ctx.routers and cfg.server.http is None:
            raise StartupError("HTTP routers were added but server.http is not configured")
        if not ctx.policy.empty and ctx.policy.verifier is None:
            raise StartupError("protected methods need a token verifier (ctx.set_verifier)")
        servers: dict[str, Server] = {}
        if cfg.server.grpc is not None:
            grpc = GrpcServer(
                cfg.server.grpc,
                health=self.health,
                policy=ctx.policy,
                identity=self._identity,
                shedding=cfg.server.shedding,
                fault=cfg.fault,
                pod=self.instance_id,
            )
            for add_to_server, servicer in ctx.grpc_services:
                grpc.add_service(add_to_server, servicer)
            self._unsubscribe.append(
                ctx.config.subscribe(lambda c: ProxyRules.of(c.server.grpc), grpc.proxies.update)
            )
            self._unsubscribe.append(
                ctx.config.subscribe(lambda c: c.server.shedding, grpc.shedding.update)
            )
            self._unsubscribe.append(ctx.config.subscribe(lambda c: c.fault, grpc.fault.update))
            servers["grpc"] = grpc
        if cfg.server.http is not None:
            # Imported here: FastAPI, Starlette and uvicorn are a gRPC-only service's
            # largest imports it would never use (docs/performance.md).
            from micro.transport.cors import CorsRules
            from micro.transport.http import HttpServer

            http = HttpServer(
                cfg.server.http,
                health=self.health,
                policy=ctx.policy,
                title=self.name,
                version=self.version,
                shedding=cfg.server.shedding,
            )
            self._unsubscribe.append(
                ctx.config.subscribe(lambda c: c.server.shedding, http.shedding.update)
            )
            for router in ctx.routers:
                http.include_router(router)
            self._unsubscribe.append(
                ctx.config.subscribe(lambda c: CorsRules.of(c.server.http), http.cors.update)
            )
            self._unsubscribe.append(
                ctx.config.subscribe(lambda c: ProxyRules.of(c.server.http), http.proxies.update)
            )
            servers["http"] = http
        if cfg.server.admin is not None:
            servers["admin"] = AdminServer(cfg.server.admin, health=self.health)
        return servers

    def _service_instance(self) -> ServiceInstance:
        endpoints = [
            format_endpoint(endpoint.scheme, advertised_host(endpoint.host), endpoint.port)
            for server in self._servers.values()
            if (endpoint := server.endpoint) is not None
        ]
        return ServiceInstance(
            id=instance_id(self.instance_id, self.name),
            name=self.name,
            version=self.version,
            endpoints=tuple(endpoints),
        )

    async def shutdown(self) -> None:
        """Not ready, deregister, drain, stop servers with the grace period, hooks."""
        cfg = self._shutdown_config()
        _log.info("shutting down: not ready, deregistering")
        await self.health.set_not_serving()
        await self._deregister()
        drain = cfg.drain_delay.total_seconds()
        if drain > 0:
            _log.info("draining for %.1fs so discovery converges", drain)
            await asyncio.sleep(drain)
        await self._release(grace=cfg.grace_period.total_seconds())
        _log.info("%s stopped", self.name)

    async def _deregister(self) -> None:
        instance, self._instance = self._instance, None
        if instance is None or self._registrar is None:
            return
        try:
            await self._registrar.deregister(instance)
        except Exception as exc:
            _log.error("deregistration failed (the pod's deletion removes it): %s", exc)

    async def _release(self, *, grace: float) -> None:
        """Stop whatever started, in reverse. Every step runs even when an earlier one
        fails: a failure is logged at ERROR naming its step, and the release goes on."""
        await self._deregister()
        servers, self._servers = self._servers, {}

        async def stop(kind: str, server: Server) -> None:
            with _logged_failure(f"stopping the {SERVER_KINDS[kind]} server"):
                await server.stop(grace)

        await asyncio.gather(*(stop(kind, server) for kind, server in servers.items()))
        if self._identity is not None:
            identity, self._identity = self._identity, None
            with _logged_failure("stopping the caller-identity pod watch"):
                await identity.stop()
        hooks = list(reversed(self.ctx.shutdown_hooks)) if self.ctx is not None else []
        if self.ctx is not None:
            self.ctx.shutdown_hooks.clear()
            hooks.append(self.ctx.close_clients)
        for hook in hooks:
            with _logged_failure(f"shutdown hook {getattr(hook, '__qualname__', hook)}"):
                await hook()
        if self._discovery is not None:
            discovery, self._discovery = self._discovery, None
            with _logged_failure("closing discovery"):
                await discovery.close()
        unsubscribe, self._unsubscribe = self._unsubscribe, []
        for stop_following in unsubscribe:
            with _logged_failure("unsubscribing a config observer"):
                stop_following()
        if self._handle is not None:
            with _logged_failure("stopping the config watch"):
                await self._handle.stop()
        if self._api is not None:
            api, self._api = self._api, None
            with _logged_failure("closing the Kubernetes API client"):
                api.close()
        with _logged_failure("flushing traces"):
            flush_tracing()


@contextlib.contextmanager
def _logged_failure(step: str) -> Iterator[None]:
    """A shutdown step whose failure is logged, not raised, so the later steps still run."""
    try:
        yield
    except Exception:
        _log.exception("shutdown step failed: %s", step)


def freeze_startup_heap() -> None:
    """Move what start-up built (modules, config, clients: it lives as long as the
    process) out of the cyclic collector, so that a full collection, a pause in the
    middle of whatever request is being served, scans only what serving has made."""
    gc.collect()
    gc.freeze()


async def serve_until_signalled(app: App[Any]) -> int:
    """Start, wait for SIGTERM/SIGINT, shut down; the process exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await app.start()
    except Exception as exc:
        detail = str(exc) or type(exc).__name__
        _log.error("start-up failed: %s", detail)
        _log.debug("start-up failure", exc_info=True)
        return 1
    freeze_startup_heap()
    await stop.wait()
    # A second signal while shutting down changes nothing: the grace period still holds.
    await app.shutdown()
    return 0


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(
    name: str,
    config_model: type[C],
    compose: Compose[C],
    *,
    version: str | None = None,
    config_dir: Path | None = None,
) -> None:
    """The whole life of a service process; exits with 0 after a clean shutdown."""
    app = App(name, config_model, compose, version=version, config_dir=config_dir)
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        code = runner.run(serve_until_signalled(app))
    sys.exit(code)
