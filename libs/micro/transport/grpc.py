"""The grpc.aio server: health, reflection, the interceptor chain and message limits."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from micro.auth import AccessPolicy
from micro.config.model import FaultConfig, GrpcServerConfig, SheddingConfig
from micro.descriptors import served_service
from micro.health import Health
from micro.identity.guard import IdentityGuard
from micro.transport.address import join_address, listen_address
from micro.transport.client_address import ProxyPolicy, ProxyRules
from micro.transport.fault import FaultInjector, fault_layer
from micro.transport.grpc_interceptors import LayeredInterceptor, server_layers
from micro.transport.limit import ConcurrencyLimiter
from micro.transport.server import Endpoint
from micro.transport.shedding import shedding_layer

_log = logging.getLogger("micro.grpc")

AddToServer = Callable[[Any, grpc.aio.Server], None]

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class GrpcServer:
    """A micro.transport.server.Server: add services, then `start()` (answers the bound
    port) and `stop(grace)`."""

    def __init__(
        self,
        config: GrpcServerConfig,
        *,
        health: Health,
        policy: AccessPolicy | None = None,
        identity: IdentityGuard | None = None,
        shedding: SheddingConfig | None = None,
        fault: FaultConfig | None = None,
        pod: str = "",
    ) -> None:
        self._config = config
        # Both follow the config at run time (`.update`); shedding is on by default.
        self.shedding = ConcurrencyLimiter(shedding or SheddingConfig(), transport="grpc")
        self.fault = FaultInjector(fault, pod=pod)  # pod: for the config's `fault.pods`
        self._health = health
        self._policy = policy if policy is not None else AccessPolicy()
        self._identity = identity  # None: no caller identity asked (public port, or off)
        self.proxies = ProxyPolicy(ProxyRules.of(config))
        self._services: list[tuple[AddToServer, Any, str]] = []
        self._server: grpc.aio.Server | None = None
        self.host = ""
        self.port = 0

    @property
    def endpoint(self) -> Endpoint | None:
        return Endpoint("grpc", self.host, self.port) if self.port else None

    @property
    def service_names(self) -> list[str]:
        return [name for _, _, name in self._services]

    def add_service(self, add_to_server: AddToServer, servicer: Any) -> None:
        """Register a generated `add_XServicer_to_server` with its servicer; the service's
        full name (for its health status) comes from the generated descriptor."""
        if self._server is not None:
            raise RuntimeError("gRPC services must be added before the server starts")
        full_name = served_service(add_to_server).full_name
        if full_name in self.service_names:
            raise ValueError(f"gRPC service {full_name} is added twice")
        self._services.append((add_to_server, servicer, full_name))

    def _quiet_methods(self) -> list[str]:
        """Full names of the methods a servicer lists in `quiet_methods`
        (micro.servicer.Servicer)."""
        return [
            f"/{name}/{method}"
            for _, servicer, name in self._services
            for method in getattr(servicer, "quiet_methods", ())
        ]

    async def start(self) -> int:
        """Bind and start; answers the bound port (config port 0 picks a free one)."""
        server = grpc.aio.server(
            interceptors=[
                LayeredInterceptor(
                    server_layers(
                        self._config.timeout,
                        self._policy,
                        self._identity,
                        self.proxies,
                        quiet=self._quiet_methods(),
                        shedding=shedding_layer(self.shedding, self._quiet_methods()),
                        fault=fault_layer(self.fault),
                    )
                )
            ],
            options=[
                # Bounds what callers send: grpc answers RESOURCE_EXHAUSTED before any
                # handler runs. Answers are the service's own and are not bounded here.
                ("grpc.max_receive_message_length", self._config.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        for add_to_server, servicer, name in self._services:
            add_to_server(servicer, server)
            await self._health.add_service(name)
        await self._health.publish()
        health_pb2_grpc.add_HealthServicer_to_server(self._health.servicer, server)
        reflection.enable_server_reflection(
            [*self.service_names, HEALTH_SERVICE, reflection.SERVICE_NAME], server
        )
        host, port = listen_address(self._config.addr)
        address = join_address(host, port)
        try:
            self.port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"gRPC server cannot listen on {address}: {exc}") from None
        self.host = host
        await server.start()
        self._server = server
        _log.info("[gRPC] server listening on: %s", join_address(host, self.port))
        return self.port

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let in-flight ones finish for up to `grace` seconds."""
        if self._server is None:
            return
        server, self._server = self._server, None
        await server.stop(grace)
        _log.info("[gRPC] server stopped")
