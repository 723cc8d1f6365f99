"""Fault injection on the gRPC server (the `fault` config section), for tests and
drills: a delay before the handler and a share of calls answered UNAVAILABLE. Off
unless configured; turning it on logs a warning, since a pod answering with it on looks
broken to anyone who does not know. Health checks are never touched, so a drill's pod
stays in rotation and the callers' own resilience is what gets tested.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from micro.config.model import FaultConfig
from micro.errors import unavailable
from micro.transport.grpc_interceptors import IDENTITY_EXEMPT_PREFIX, GrpcCall, Layer, _CallLayer

_log = logging.getLogger("micro.fault")


class FaultInjector:
    """What the config asks of one call: whether it `applies(method)`, then `delay_s()`
    and whether it `fails()`.
    `chance` is injectable (a uniform draw in [0, 1)) so tests are deterministic; `pod`
    is this process's pod name, matched against the config's `pods`."""

    def __init__(
        self,
        config: FaultConfig | None = None,
        *,
        pod: str = "",
        chance: Callable[[], float] = random.random,
    ) -> None:
        self._config = FaultConfig()
        self._pod = pod
        self._chance = chance
        self._methods: frozenset[str] = frozenset()
        self._services: tuple[str, ...] = ()
        if config is not None:
            self.update(config)

    @property
    def active(self) -> bool:
        config = self._config
        if config.pods and self._pod not in config.pods:
            return False
        return config.delay.total_seconds() > 0 or config.unavailable_share > 0

    def update(self, config: FaultConfig) -> None:
        was = self.active
        self._config = config
        full = [m if m.startswith("/") else "/" + m for m in config.methods]
        self._methods = frozenset(m for m in full if not m.endswith("/*"))
        self._services = tuple(m[:-1] for m in full if m.endswith("/*"))
        if self.active and not was:
            _log.warning(
                "fault injection ON: delay %.3fs, %.0f%% of calls UNAVAILABLE, methods: %s",
                config.delay.total_seconds(),
                config.unavailable_share * 100,
                ", ".join(config.methods) or "all",
            )
        elif was and not self.active:
            _log.warning("fault injection off")

    def applies(self, method: str) -> bool:
        if not self.active or method.startswith(IDENTITY_EXEMPT_PREFIX):
            return False
        if not self._methods and not self._services:
            return True
        return method in self._methods or method.startswith(self._services)

    def delay_s(self) -> float:
        return self._config.delay.total_seconds()

    def fails(self) -> bool:
        share = self._config.unavailable_share
        return share > 0 and self._chance() < share


class _Fault(_CallLayer):
    __slots__ = ("_faults",)

    def __init__(self, call: GrpcCall, faults: FaultInjector) -> None:
        super().__init__(call)
        self._faults = faults

    async def __aenter__(self) -> None:
        faults = self._faults
        if not faults.applies(self.call.method):
            return
        delay = faults.delay_s()
        if delay > 0:
            await asyncio.sleep(delay)
        if faults.fails():
            raise unavailable(f"{self.call.method}: fault injected (config fault)")


def fault_layer(faults: FaultInjector) -> Layer:
    """Inside recovery and the deadline: an injected failure is logged and counted like
    any other, and an injected delay is cut by the call's deadline."""
    return lambda call: _Fault(call, faults)
