"""What a registry is to the rest of the framework: instances, registrars, discoveries."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ServiceInstance:
    """One running copy of a service, as the Go-Micro registry describes it."""

    id: str
    name: str
    version: str
    metadata: dict[str, str] = field(default_factory=dict, hash=False)
    endpoints: tuple[str, ...] = ()  # "grpc://10.0.0.1:9090", "http://[fd00::1]:8080"

    def endpoint(self, scheme: str) -> str | None:
        """The first endpoint with this scheme, e.g. "grpc"; None when there is none."""
        prefix = f"{scheme}://"
        return next((e for e in self.endpoints if e.startswith(prefix)), None)


class Registrar(Protocol):
    async def register(self, instance: ServiceInstance) -> None: ...

    async def deregister(self, instance: ServiceInstance) -> None: ...


InstancesListener = Callable[[list[ServiceInstance]], None]


class Discovery(Protocol):
    async def instances(self, service_name: str) -> list[ServiceInstance]:
        """The routable instances now; starts watching the service on first use."""
        ...

    def subscribe(self, service_name: str, listener: InstancesListener) -> Callable[[], None]:
        """Call listener with the full routable set on every change; returns unsubscribe."""
        ...

    def apply_accounts(self, accounts: Mapping[str, str]) -> None:
        """registry.accounts (registry name -> service account) from now on."""
        ...

    async def close(self) -> None: ...
