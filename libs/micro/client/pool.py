"""The channels to one service's ready instances, kept in step with discovery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from micro.client.ejection import Outlier, ejectable
from micro.client.pool_metrics import POOLS
from micro.client.scoring import PeakEwma
from micro.client.settings import CallSettings
from micro.config.model import GrpcClientConfig
from micro.metrics import CLIENT_EJECTIONS
from micro.registry.base import Discovery, ServiceInstance
from micro.registry.endpoints import EndpointError, grpc_target

log = logging.getLogger("micro.client")

InterceptorsFor = Callable[[str], Sequence[Any]]
Clock = Callable[[], float]
# Seconds: the latency unanswered endpoints are scored with while no endpoint has
# answered (any value works then, so long as it is not 0: 0 x in-flight ties every count).
FIRST_LATENCY_S = 0.01


class Endpoint:
    """One instance's grpc.aio channel, the calls it is carrying now, and what its
    answers said (its load score and its outlier record)."""

    def __init__(
        self,
        target: str,
        channel: grpc.aio.Channel,
        instance: ServiceInstance,
        *,
        on_end: Callable[[Endpoint, float, bool], None],
        now: float,
    ) -> None:
        self.target = target
        self.channel = channel
        self.instance = instance
        self.outstanding = 0
        self.removed = False
        self.idle = asyncio.Event()  # set when removed and its last call has ended
        self.callables: dict[str, Any] = {}  # method path -> this channel's multicallable
        self._on_end = on_end
        self.load = PeakEwma(now)
        self.outlier = Outlier()
        self.last_picked = now

    def reset(self, now: float) -> None:
        """Forget what its answers said (back from removal: nothing stale carries over)."""
        self.load = PeakEwma(now)
        self.outlier = Outlier()
        self.last_picked = now

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
        if latency_s is not None:
            self._on_end(self, latency_s, failed)


class InstancePool:
    """Channels per ready instance of one service, chosen by power of two choices.

    Two random instances are compared and the one with the lower score wins (peak-EWMA
    latency x (in-flight + 1) / EWMA success rate, micro.client.scoring): a slow,
    failing or overloaded instance gets less traffic (round robin would keep sending it
    1/N), and the random pair avoids every caller herding onto the one best instance.
    The loser of a draw that has not been picked for balancing.idle_pick_after is picked
    instead, once, so a recovered instance gets the chance to show it. Outliers are
    ejected for a while (micro.client.ejection) and skipped unless nothing else is left.
    Removed instances stop getting calls at once; their channels close when their
    in-flight calls have finished (or drain_limit_s passed). Settings are read at each
    pick and each answer, so a config change applies at once.
    """

    def __init__(
        self,
        service_name: str,
        discovery: Discovery,
        *,
        interceptors: InterceptorsFor,
        channel_options: Sequence[tuple[str, Any]] = (),
        drain_limit_s: float = 30.0,
        settings: CallSettings | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.service_name = service_name
        self._settings = settings or CallSettings(GrpcClientConfig())
        self._clock = clock
        self._discovery = discovery
        self._interceptors = interceptors
        self._channel_options = list(channel_options)
        self._drain_limit_s = drain_limit_s
        self._active: dict[str, Endpoint] = {}
        self._choices: list[Endpoint] = []
        self._out: list[Endpoint] = []  # ejected, among the active
        self._draining: dict[str, Endpoint] = {}
        self._closers: set[asyncio.Task[None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._started: asyncio.Task[None] | None = None
        self._closed = False
        # Whether the last pick was the loser of its draw, chosen because it had idled:
        # read right after pick(), before anything awaits.
        self.probing = False
        POOLS.add(self)

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

    def _cfg(self) -> GrpcClientConfig:
        # Per dependency only: an endpoint's score and record are shared by its methods.
        return self._settings.resolved(self.service_name)

    def pick(self, exclude: Sequence[Endpoint] = ()) -> Endpoint | None:
        """Power of two choices on the score, skipping excluded endpoints, and ejected
        ones unless nothing else is left."""
        now = self._clock()
        if self._out:
            self._bring_back_due(now)
        choices = self._choices
        if exclude or self._out:
            choices = [e for e in choices if e not in exclude]
            healthy = [e for e in choices if not e.outlier.ejected]
            choices = healthy or choices
        return self._pick_from(choices, now)

    def pick_for_retry(self, tried: Sequence[Endpoint]) -> Endpoint | None:
        """An instance in good standing, one not tried first; None when there is none."""
        now = self._clock()
        if self._out:
            self._bring_back_due(now)
        good = self._in_good_standing()
        return self._pick_from([e for e in good if e not in tried] or good, now)

    def any_in_good_standing(self) -> bool:
        """Whether a retry has somewhere to go: with every instance ejected or failing
        (retry_budget.failing_after failures in a row), the dependency as a whole is
        failing (or the request is at fault), and a retry would add load and wait."""
        return bool(self._in_good_standing())

    def _in_good_standing(self) -> list[Endpoint]:
        failing_after = self._cfg().retry_budget.failing_after
        return [e for e in self._choices if e.outlier.in_good_standing(failing_after)]

    def _pick_from(self, choices: list[Endpoint], now: float) -> Endpoint | None:
        self.probing = False
        if len(choices) < 2:
            chosen = choices[0] if choices else None
        else:
            cfg = self._cfg().balancing
            # Two distinct indices (random.sample costs several times more per call).
            i = random.randrange(len(choices))  # noqa: S311
            j = random.randrange(len(choices) - 1)  # noqa: S311
            first, second = choices[i], choices[j + (j >= i)]
            neutral = FIRST_LATENCY_S
            if first.load.latency_s is None or second.load.latency_s is None:
                neutral = self._neutral_latency()
            if first.load.score(first.outstanding, cfg, neutral) > second.load.score(
                second.outstanding, cfg, neutral
            ):
                first, second = second, first
            self.probing = now - second.last_picked >= cfg.idle_pick_after.total_seconds()
            chosen = second if self.probing else first
        if chosen is not None:
            chosen.last_picked = now
        return chosen

    def _ended(self, endpoint: Endpoint, latency_s: float, failed: bool) -> None:
        """An attempt's answer: the endpoint's score learns from it, and it may be
        ejected (logged once per ejection, not per call)."""
        now = self._clock()
        cfg = self._cfg()
        endpoint.load.observe(latency_s, failed, now, cfg.balancing)
        if endpoint.removed:
            return
        reason = endpoint.outlier.record(failed, now, cfg.ejection)
        if reason is None or not ejectable(len(self._choices), len(self._out), cfg.ejection):
            return
        seconds = endpoint.outlier.eject(now, cfg.ejection)
        self._out.append(endpoint)
        CLIENT_EJECTIONS.labels(self.service_name).inc()
        log.warning(
            "client %s: instance %s ejected for %gs: %s (ejection %d in a row)",
            self.service_name,
            endpoint.target,
            seconds,
            reason,
            endpoint.outlier.ejections,
        )

    def _bring_back_due(self, now: float) -> None:
        for endpoint in [e for e in self._out if e.outlier.due_back(now)]:
            self._out.remove(endpoint)
            endpoint.outlier.bring_back()
            # It starts as an average peer: its pre-ejection score would starve it of
            # the calls that show whether it recovered.
            endpoint.load = PeakEwma(now)
            log.info(
                "client %s: instance %s back from ejection", self.service_name, endpoint.target
            )

    def _neutral_latency(self) -> float:
        """The latency an endpoint not yet answered is scored with: its peers' average."""
        peers = [e.load.latency_s for e in self._choices if e.load.latency_s is not None]
        return sum(peers) / len(peers) if peers else FIRST_LATENCY_S

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
                revived.reset(self._clock())
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
        self._out = [e for e in self._out if not e.removed]

    def _open(self, target: str, instance: ServiceInstance) -> Endpoint:
        channel = grpc.aio.insecure_channel(
            target,
            options=self._channel_options,
            interceptors=list(self._interceptors(self.service_name)),
        )
        return Endpoint(
            target,
            channel,
            instance,
            on_end=self._ended,
            now=self._clock(),
        )

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
        POOLS.discard(self)
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._started is not None and not self._started.done():
            self._started.cancel()
        endpoints = [*self._active.values(), *self._draining.values()]
        self._active, self._draining, self._choices, self._out = {}, {}, [], []
        for task in list(self._closers):
            task.cancel()
        await asyncio.gather(
            *(e.channel.close(grace=1.0) for e in endpoints), return_exceptions=True
        )
