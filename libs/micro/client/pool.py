"""The channels to one service's ready instances, kept in step with discovery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from micro.registry.base import Discovery, ServiceInstance
from micro.registry.endpoints import EndpointError, grpc_target

log = logging.getLogger("micro.client")

InterceptorsFor = Callable[[str], Sequence[Any]]


class Endpoint:
    """One instance's grpc.aio channel and the calls it is carrying now."""

    def __init__(self, target: str, channel: grpc.aio.Channel, instance: ServiceInstance) -> None:
        self.target = target
        self.channel = channel
        self.instance = instance
        self.outstanding = 0
        self.removed = False
        self.idle = asyncio.Event()  # set when removed and its last call has ended
        self.callables: dict[str, Any] = {}  # method path -> this channel's multicallable

    def begin(self) -> None:
        """An attempt was sent here (counted from the pick on, so that calls still
        connecting steer later picks)."""
        self.outstanding += 1

    def end(self, latency_s: float | None = None, *, failed: bool = False) -> None:
        """The attempt begun here ended after latency_s; failed per
        micro.client.outcome.counts_as_failure. None: nothing to learn from it (cancelled
        by the caller, or never sent)."""
        self.outstanding -= 1
        if self.removed and self.outstanding == 0:
            self.idle.set()


class InstancePool:
    """Channels per ready instance of one service, chosen by power of two choices.

    Two random instances are compared and the one with fewer outstanding calls wins:
    a slow or overloaded instance gets less traffic (round robin would keep sending it
    1/N), and the random pair avoids every caller herding onto the one least-loaded
    instance. Removed instances stop getting calls at once; their channels close when
    their in-flight calls have finished (or drain_limit_s passed).
    """

    def __init__(
        self,
        service_name: str,
        discovery: Discovery,
        *,
        interceptors: InterceptorsFor,
        channel_options: Sequence[tuple[str, Any]] = (),
        drain_limit_s: float = 30.0,
    ) -> None:
        self.service_name = service_name
        self._discovery = discovery
        self._interceptors = interceptors
        self._channel_options = list(channel_options)
        self._drain_limit_s = drain_limit_s
        self._active: dict[str, Endpoint] = {}
        self._choices: list[Endpoint] = []
        self._draining: dict[str, Endpoint] = {}
        self._closers: set[asyncio.Task[None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._started: asyncio.Task[None] | None = None
        self._closed = False

    def follow(self) -> asyncio.Task[None]:
        """Start following the service (once; on the running loop)."""
        if self._started is None:
            self._unsubscribe = self._discovery.subscribe(self.service_name, self.update)
            self._started = asyncio.get_running_loop().create_task(self._first_answer())
        return self._started

    async def ready(self) -> None:
        """Wait for discovery's first answer; callers bound this with their deadline."""
        started = self.follow()
        if not started.done():
            await asyncio.shield(started)

    async def _first_answer(self) -> None:
        # Applied as returned: nothing runs between its return and this line, so it is
        # never older than what the subscription has delivered.
        self.update(await self._discovery.instances(self.service_name))

    @property
    def started(self) -> bool:
        return self._started is not None and self._started.done()

    def endpoints(self) -> list[Endpoint]:
        return list(self._choices)

    def draining(self) -> list[str]:
        """Targets of removed instances whose channels are still finishing calls."""
        return sorted(self._draining)

    def pick(self, exclude: Sequence[Endpoint] = ()) -> Endpoint | None:
        """Power of two choices on outstanding calls, skipping excluded endpoints."""
        choices = self._choices
        if exclude:
            choices = [e for e in choices if e not in exclude]
        if len(choices) < 2:
            return choices[0] if choices else None
        first, second = random.sample(choices, 2)
        return first if first.outstanding <= second.outstanding else second

    def update(self, instances: list[ServiceInstance]) -> None:
        """Apply discovery's current routable set (called on the event loop)."""
        if self._closed:
            return
        wanted: dict[str, ServiceInstance] = {}
        for instance in instances:
            endpoint = instance.endpoint("grpc")
            if endpoint is None:
                continue
            try:
                wanted.setdefault(grpc_target(endpoint), instance)
            except EndpointError as error:
                log.warning(
                    "client %s: instance %s skipped: %s", self.service_name, instance.id, error
                )
        for target, instance in wanted.items():
            current = self._active.get(target)
            if current is not None:
                current.instance = instance
                continue
            revived = self._draining.pop(target, None)
            if revived is not None:  # back before its channel closed: keep using it
                revived.removed = False
                revived.instance = instance
                self._active[target] = revived
            else:
                self._active[target] = self._open(target, instance)
        for target in [t for t in self._active if t not in wanted]:
            gone = self._active.pop(target)
            gone.removed = True
            self._draining[target] = gone
            task = asyncio.get_running_loop().create_task(self._close_when_idle(gone))
            self._closers.add(task)
            task.add_done_callback(self._closers.discard)
        self._choices = list(self._active.values())

    def _open(self, target: str, instance: ServiceInstance) -> Endpoint:
        channel = grpc.aio.insecure_channel(
            target,
            options=self._channel_options,
            interceptors=list(self._interceptors(self.service_name)),
        )
        return Endpoint(target, channel, instance)

    async def _close_when_idle(self, endpoint: Endpoint) -> None:
        if endpoint.outstanding:
            endpoint.idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(endpoint.idle.wait(), self._drain_limit_s)
        if not endpoint.removed:  # it came back meanwhile
            return
        if self._draining.get(endpoint.target) is endpoint:
            del self._draining[endpoint.target]
        await endpoint.channel.close(grace=1.0)

    async def close(self) -> None:
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._started is not None and not self._started.done():
            self._started.cancel()
        endpoints = [*self._active.values(), *self._draining.values()]
        self._active, self._draining, self._choices = {}, {}, []
        for task in list(self._closers):
            task.cancel()
        await asyncio.gather(
            *(e.channel.close(grace=1.0) for e in endpoints), return_exceptions=True
        )
