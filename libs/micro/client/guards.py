"""What bounds the calls to one dependency: its retry budget and a breaker per method."""

from __future__ import annotations

import time

from micro.client.breaker import AdaptiveThrottle, Clock
from micro.client.budget import RetryBudget
from micro.client.settings import CallSettings


class DependencyGuards:
    """One per dependency (registry name), shared by all its stubs; each reads its
    settings through `settings.resolved`, so config changes apply to the next call."""

    def __init__(
        self, service_name: str, settings: CallSettings, *, clock: Clock = time.monotonic
    ) -> None:
        self.service_name = service_name
        self._settings = settings
        self._clock = clock
        self.budget = RetryBudget(
            service_name, lambda: settings.resolved(service_name).retry_budget, clock=clock
        )
        self._breakers: dict[str, AdaptiveThrottle] = {}

    def breaker(self, method_name: str) -> AdaptiveThrottle:
        """The breaker of one method, by short name (VerifyPassword)."""
        breaker = self._breakers.get(method_name)
        if breaker is None:
            service, settings = self.service_name, self._settings
            breaker = AdaptiveThrottle(
                service,
                method_name,
                lambda: settings.resolved(service, method_name).breaker,
                clock=self._clock,
            )
            self._breakers[method_name] = breaker
        return breaker
