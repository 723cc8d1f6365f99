"""A registry from config: fixed addresses, for runs without any Kubernetes API."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from micro.config.model import StaticService
from micro.registry.base import InstancesListener, ServiceInstance
from micro.registry.endpoints import parse_endpoint

log = logging.getLogger("micro.registry.static")


class NoopRegistrar:
    """Registration where there is nothing to register with (static and EndpointSlice
    modes: callers find this instance through config, or through the Service)."""

    async def register(self, instance: ServiceInstance) -> None:
        log.debug("registry: %s %s not published (no pod registration)", instance.name, instance.id)

    async def deregister(self, instance: ServiceInstance) -> None:
        return None


class StaticDiscovery:
    """One instance per configured endpoint; a bare "host:port" means grpc://host:port."""

    def __init__(self, services: Iterable[StaticService]) -> None:
        self._instances: dict[str, list[ServiceInstance]] = {}
        for service in services:
            endpoints = [_with_scheme(e) for e in service.endpoints]
            for endpoint in endpoints:
                parse_endpoint(endpoint)  # an invalid address fails at start, named
            self._instances[service.name] = [
                ServiceInstance(
                    id=f"{service.name}-{index}",
                    name=service.name,
                    version="",
                    endpoints=(endpoint,),
                )
                for index, endpoint in enumerate(endpoints)
            ]

    async def instances(self, service_name: str) -> list[ServiceInstance]:
        return list(self._instances.get(service_name, ()))

    def subscribe(self, service_name: str, listener: InstancesListener) -> Callable[[], None]:
        return lambda: None  # the set never changes

    def apply_accounts(self, accounts: Mapping[str, str]) -> None:
        return None  # configured addresses are trusted as written: no Pod to check

    async def close(self) -> None:
        return None


def _with_scheme(endpoint: str) -> str:
    return endpoint if "://" in endpoint else f"grpc://{endpoint}"
