"""What Pod and EndpointSlice discovery share: one Informer per watched service, the
routable set kept current on the loop, and listeners told only when it changes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import kubernetes.client

from micro.kube import Backoff, Informer, InformerEvent, Resource
from micro.registry.accounts import ForgeryCheck, ServiceAccounts
from micro.registry.base import InstancesListener, ServiceInstance

log = logging.getLogger("micro.registry")


@dataclass
class WatchedService:
    name: str
    informer: Informer
    forgery: ForgeryCheck
    instances: list[ServiceInstance] = field(default_factory=list)
    listeners: list[InstancesListener] = field(default_factory=list)
    start: asyncio.Task[None] | None = None


class WatchedDiscovery(ABC):
    """A Discovery that follows each asked-for service with its own Informer on
    `resource` objects in one namespace (never cluster-wide), routing only to Pods that
    run as the service's account (`accounts`, micro.registry.accounts)."""

    resource: Resource

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        namespace: str,
        *,
        accounts: Mapping[str, str] | None = None,
        sync_limit_s: float = 5.0,
        backoff: Backoff | None = None,
    ) -> None:
        if not namespace:
            raise ValueError(
                f"{type(self).__name__} needs a namespace; it never watches cluster-wide"
            )
        self._api = api
        self._namespace = namespace
        self._backoff = backoff
        self._accounts = ServiceAccounts(accounts)
        # How long instances() waits for the first list before answering with what it has.
        self._sync_limit_s = sync_limit_s
        self._services: dict[str, WatchedService] = {}
        self._closed = False

    @abstractmethod
    def _label_selector(self, service_name: str) -> str:
        """The label selector of exactly this service's objects."""

    def _informer(self, service_name: str) -> Informer:
        """A new, unstarted Informer; each has its own Backoff state."""
        backoff = Backoff(self._backoff.base, self._backoff.cap) if self._backoff else None
        return Informer(
            self._api,
            self.resource,
            namespace=self._namespace,
            label_selector=self._label_selector(service_name),
            backoff=backoff,
        )

    @abstractmethod
    def _routable(
        self, watched: WatchedService, events: Sequence[InformerEvent]
    ) -> list[ServiceInstance]:
        """The routable instances after these events (the informer's snapshot is current)."""

    async def instances(self, service_name: str) -> list[ServiceInstance]:
        watched = self._watch(service_name)
        assert watched.start is not None
        await watched.start
        await watched.informer.wait_synced(self._sync_limit_s)
        return list(watched.instances)

    def subscribe(self, service_name: str, listener: InstancesListener) -> Callable[[], None]:
        watched = self._watch(service_name)
        watched.listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                watched.listeners.remove(listener)

        return unsubscribe

    def apply_accounts(self, accounts: Mapping[str, str]) -> None:
        """New registry.accounts: every followed service's set is judged again now."""
        if not self._accounts.update(accounts):
            return
        for watched in list(self._services.values()):
            current = watched.informer.snapshot()
            self._changed(watched, [InformerEvent("MODIFIED", k, o) for k, o in current.items()])

    def last_error(self, service_name: str) -> str | None:
        """Why following this service is failing now (None when it is fine or not watched)."""
        watched = self._services.get(service_name)
        return None if watched is None else watched.informer.last_error

    async def close(self) -> None:
        self._closed = True
        services, self._services = list(self._services.values()), {}
        for watched in services:
            if watched.start is not None:
                with contextlib.suppress(Exception):
                    await watched.start
        await asyncio.gather(*(w.informer.stop() for w in services))

    def _watch(self, service_name: str) -> WatchedService:
        if self._closed:
            raise RuntimeError("discovery is closed")
        watched = self._services.get(service_name)
        if watched is None:
            watched = self._follow(service_name)
            self._services[service_name] = watched
            watched.start = asyncio.get_running_loop().create_task(watched.informer.start())
        return watched

    def _follow(self, service_name: str) -> WatchedService:
        """A WatchedService fed by its informer's events (not started yet)."""
        watched = WatchedService(
            service_name, self._informer(service_name), ForgeryCheck(service_name)
        )
        watched.informer.subscribe(lambda events: self._changed(watched, events))
        return watched

    def _changed(self, watched: WatchedService, events: Sequence[InformerEvent]) -> None:
        instances = sorted(self._routable(watched, events), key=lambda i: i.id)
        if instances == watched.instances:
            return
        watched.instances = instances
        log.info(
            "registry: %s now has %d routable instance(s): %s",
            watched.name,
            len(instances),
            ", ".join(f"{i.id} {'/'.join(i.endpoints)}" for i in instances) or "none",
        )
        for listener in list(watched.listeners):
            try:
                listener(list(instances))
            except Exception:
                log.exception("registry: a listener of %s failed", watched.name)
