"""The retry budget of one dependency: a token bucket, as Finagle's RetryBudget and
gRPC's retry throttling bound retries, so that an outage never multiplies the load.

Each call sent adds `ratio` tokens and `min_per_second` arrive each second, up to
`burst`; a retry or a hedge takes one token, and without one it is not sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from micro.config.model import RetryBudgetConfig
from micro.metrics import CLIENT_RETRY_BUDGET_DENIED, CLIENT_RETRY_BUDGET_TOKENS

log = logging.getLogger("micro.client")

Clock = Callable[[], float]


class RetryBudget:
    """Shared by every method of one dependency."""

    def __init__(
        self,
        service_name: str,
        config: Callable[[], RetryBudgetConfig],
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self.service_name = service_name
        self._config = config
        self._clock = clock
        self._tokens = config().burst  # a caller starting up may retry at once
        self._at = clock()
        self.dry = False
        self._gauge = CLIENT_RETRY_BUDGET_TOKENS.labels(service_name)
        self._denied = CLIENT_RETRY_BUDGET_DENIED.labels(service_name)
        self._gauge.set(self._tokens)

    def _refill(self, cfg: RetryBudgetConfig, added: float = 0.0) -> float:
        now = self._clock()
        elapsed, self._at = max(0.0, now - self._at), now
        self._tokens = min(cfg.burst, self._tokens + elapsed * cfg.min_per_second + added)
        self._gauge.set(self._tokens)
        return self._tokens

    @property
    def left(self) -> float:
        """Tokens left now (whole ones are retries)."""
        return self._refill(self._config())

    def sent(self) -> None:
        """A call's first attempt was sent: it earns `ratio` of a retry."""
        cfg = self._config()
        if cfg.enabled:
            self._note(self._refill(cfg, cfg.ratio) >= 1.0)

    def try_spend(self) -> bool:
        """Take one token for a retry or a hedge; False: do not send it."""
        cfg = self._config()
        if not cfg.enabled:
            return True
        if self._refill(cfg) < 1.0:
            self._denied.inc()
            self._note(False)
            return False
        self._tokens -= 1.0
        self._gauge.set(self._tokens)
        self._note(True)
        return True

    def _note(self, has_tokens: bool) -> None:
        # One line when it runs dry and one when it recovers, never per call.
        if has_tokens and self.dry:
            self.dry = False
            log.info("client %s: retry budget recovered, retries resume", self.service_name)
        elif not has_tokens and not self.dry:
            self.dry = True
            log.warning(
                "client %s: retry budget ran dry: failed calls are not retried until it refills",
                self.service_name,
            )
