"""Stubs for other services, balanced over their ready instances."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

import grpc

from micro.client.balanced import BalancedChannel
from micro.client.guards import DependencyGuards
from micro.client.hedging import Hedger
from micro.client.idempotency import idempotent_methods, keyed_methods, no_side_effect_methods
from micro.client.pool import InstancePool, InterceptorsFor
from micro.client.settings import CallSettings
from micro.config.model import GrpcClientConfig
from micro.descriptors import stub_services
from micro.identity.caller import CallerTokens
from micro.registry.base import Discovery
from micro.registry.names import package_registry_name
from micro.transport.client_interceptors import client_interceptors

S = TypeVar("S")
S_co = TypeVar("S_co", covariant=True)


class StubClass(Protocol[S_co]):
    """A generated *Stub class as called on an aio channel: mypy-protobuf overloads its
    `__new__` so that this call gives the *AsyncStub type."""

    def __call__(self, channel: grpc.aio.Channel, /) -> S_co: ...


def service_name_of(stub_class: object) -> str:
    """The default registry name of a stub's service, from its descriptor:
    UserServiceStub (package user_srv.v1) -> "go-micro.user-srv"."""
    services = stub_services(stub_class) if isinstance(stub_class, type) else []
    if not services:
        raise TypeError(f"{stub_class!r} is not a generated *Stub class (no service found)")
    return package_registry_name(services[0].full_name)


class ClientFactory:
    """`factory.stub("go-micro.user-srv", UserServiceStub)` -> a stub over every ready
    instance of the service.

    - Each call picks an instance (power of two choices on a latency, load and error
      score; outliers ejected for a while: InstancePool).
    - Methods marked `idempotency_level = NO_SIDE_EFFECTS` (or IDEMPOTENT) are retried on
      UNAVAILABLE on another instance, up to cfg.max_attempts and within the deadline;
      so are methods declared `(micro.v1.idempotency_key) = true`, whose calls carry an
      x-idempotency-key (the same on every attempt) by which the server answers a repeat.
    - The deadline is the call's timeout, else cfg.timeout; while serving a request,
      never more than what is left of that request's deadline (micro.deadline).
    - Retries wait a jittered backoff and take a token of the dependency's retry budget;
      each method has an adaptive breaker that refuses calls locally while most fail
      (docs/registry.md, Resilience).
    - A NO_SIDE_EFFECTS call still unanswered after its method's recent p95 latency is
      hedged on another instance (cfg.hedging), the first answer wins.
    - `update(cfg)` applies new client settings to the calls that start from then on
      (stubs stay as they are; calls in flight keep their deadline).
    - With no ready instance a call fails at once: UNAVAILABLE "no ready instance of <name>".
    - Each instance has its own grpc.aio channel carrying `interceptors(service_name)`
      (by default: tracing context, client metrics and, given `tokens`, this service's
      token for that service in x-micro-identity).
    """

    def __init__(
        self,
        discovery: Discovery,
        cfg: GrpcClientConfig,
        *,
        interceptors: InterceptorsFor | None = None,
        tokens: CallerTokens | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
        drain_limit_s: float = 30.0,
    ) -> None:
        self._discovery = discovery
        self._settings = CallSettings(cfg)
        if interceptors is not None and tokens is not None:
            raise ValueError("give the tokens to your own interceptors, not to the factory")
        self._interceptors = interceptors or functools.partial(client_interceptors, tokens=tokens)
        self._channel_options = channel_options
        self._drain_limit_s = drain_limit_s
        self._pools: dict[str, InstancePool] = {}
        self._guards: dict[str, DependencyGuards] = {}
        self._hedgers: dict[str, Hedger] = {}

    def pool(self, service_name: str) -> InstancePool:
        """The channels to service_name's instances, shared by all its stubs."""
        pool = self._pools.get(service_name)
        if pool is None:
            pool = InstancePool(
                service_name,
                self._discovery,
                interceptors=self._interceptors,
                channel_options=self._channel_options,
                drain_limit_s=self._drain_limit_s,
                settings=self._settings,
            )
            self._pools[service_name] = pool
        return pool

    def guards(self, service_name: str) -> DependencyGuards:
        """service_name's retry budget and breakers, shared by all its stubs."""
        guards = self._guards.get(service_name)
        if guards is None:
            guards = DependencyGuards(service_name, self._settings)
            self._guards[service_name] = guards
        return guards

    def channel(self, service_name: str, stub_class: type) -> BalancedChannel:
        return BalancedChannel(
            self.pool(service_name),
            retryable_methods=idempotent_methods(stub_class),
            settings=self._settings,
            guards=self.guards(service_name),
            keyed_methods=keyed_methods(stub_class),
            hedger=self._hedgers.setdefault(service_name, Hedger(service_name)),
            hedged_methods=no_side_effect_methods(stub_class),
        )

    def update(self, cfg: GrpcClientConfig) -> None:
        """New client settings (deadline, attempts) for every stub, from the next call on."""
        self._settings.update(cfg)

    def stub(self, service_name: str, stub_class: StubClass[S]) -> S:
        """The stub; on a running loop, discovery of the service starts now, so the
        first call usually finds the instances already known."""
        if not isinstance(stub_class, type):
            raise TypeError(f"stub_class must be a generated *Stub class, got {stub_class!r}")
        channel = self.channel(service_name, stub_class)
        with contextlib.suppress(RuntimeError):  # no running loop: the first call starts it
            asyncio.get_running_loop()
            self.pool(service_name).follow()
        stub: S = stub_class(channel)
        return stub

    async def close(self) -> None:
        """Close every channel (in-flight calls get a second to finish)."""
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.close()
